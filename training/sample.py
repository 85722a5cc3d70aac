"""New one-shots from a trained model: ``python -m training.sample --class kick``.

Four ways to use the model, all deterministic for a given --seed on a given device:

  generate     --class kick --n 8         new sounds of a class (none: unconditional)
  variations   --init x.wav --strength s  noise your sound to level s (0 = unchanged,
                                          1 = only noise left) and denoise it again, --n times;
                                          with --class, towards that class
  inpainting   --init x.wav --keep-ms 30  keep the first 30 ms exactly, regenerate the rest to
                                          fit them (with --strength < 1, stay near the old tail)
  interpolate  --interpolate a.wav b.wav --frames 8
                                          DDIM-invert both sounds to noise, interpolate the
                                          noises spherically, sample every frame back

Files are WAVs at the model's sample rate and exactly its clip length, named
``<class>_<seed>_<i>.wav`` (variations ``<stem>_var_<seed>_<i>``, inpainting
``<stem>_tail_<seed>_<i>``, interpolation ``<a>_to_<b>_<ii>``), with ``samples.csv`` beside them
(one row per file: mode, class, seed, steps, sampler, guidance, strength, checkpoint and its
sha256...). New sounds are peak-normalized to ``sample.peak_db``; variations, inpainting and
interpolation keep the level of the sounds they start from.

The checkpoint is the ``train`` stage's ``models/model.pt`` or an original Dance Diffusion
``.ckpt`` (unconditional, so no --class; it does not record its sample rate or clip length:
give --sample-rate / --length unless they are 48000 and 65536). Defaults come from params.yaml
``sample``. ``--every-class`` is the DVC ``sample`` stage: ``sample.n_per_class`` sounds of each
class into ``outputs/samples/<class>/``, plus ``outputs/samples/spectrograms.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import params as core_params
from core.cli import plural
from core.errors import ConfigError
from core.files import sha256_file
from core.params import SAMPLERS, Params
from pipeline.audio import db_to_amp, no_clipping, peak, peak_to
from training import sampling
from training.checkpoints import load_model
from training.model import Denoiser
from training.outputs import CSV_NAME, SUBTYPES, write_clips
from training.sample_inputs import (
    UsageError,
    class_label,
    classes_line,
    clip_format,
    finishing,
    flag,
    load_init,
    out_folder,
    settings,
)
from training.sampling import Settings

CHECKPOINT = Path("models/model.pt")
OUT_ROOT = Path("outputs")
SAMPLES_DIR = OUT_ROOT / "samples"  # the `sample` stage's folder; --class X goes to X/ in it
GRID_NAME = "spectrograms.png"
UNCONDITIONAL = "unconditional"


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags; none has a default of its own (params.yaml ``sample`` fills them in)."""
    argv = sys.argv[1:] if argv is None else argv
    helping = any(a in ("-h", "--help") for a in argv)
    parser = argparse.ArgumentParser(
        prog="python -m training.sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=classes_line(argv, CHECKPOINT) if helping else None,
    )
    add = parser.add_argument
    add("--class", dest="cls", metavar="NAME", help="class to sample (see the error for the list)")
    add("--n", type=int, help="how many sounds or variations (sample.n)")
    add("--steps", type=int, help="sampler steps (sample.steps)")
    add("--sampler", choices=SAMPLERS, help="ddim, or dpmpp-2m: DPM-Solver++(2M) (sample.sampler)")
    add("--guidance", type=float, help="classifier-free guidance scale; 1 = off (sample.guidance)")
    add("--seed", type=int, help="noise seed (sample.seed)")
    add("--hit-ms", type=float, help="how long the hits ring, in ms (default: drawn per sound)")
    add(
        "--out",
        type=Path,
        help="output folder (default: outputs/samples/<class>/; outputs/variations/, "
        "outputs/inpaint/, outputs/interpolations/)",
    )
    add("--checkpoint", type=Path, default=CHECKPOINT, help=f"model file ({CHECKPOINT})")
    add("--device", help="auto (a GPU when there is one), cpu, cuda, cuda:1, mps (sample.device)")
    add("--batch-size", type=int, help="clips per forward pass (sample.batch_size)")
    add("--bit-depth", type=int, choices=sorted(SUBTYPES), help="WAV bits (sample.bit_depth)")
    add("--init", type=Path, metavar="WAV", help="start from this sound: variations / inpainting")
    add("--strength", type=float, help="noise level for --init, 0..1 (sample.strength)")
    add("--keep-ms", type=float, help="with --init: keep this many ms of its start exactly")
    add("--interpolate", type=Path, nargs=2, metavar=("A", "B"), help="interpolate A to B")
    add("--frames", type=int, help="frames of --interpolate, ends included (sample.frames)")
    add(
        "--every-class",
        action="store_true",
        help="sample.n_per_class sounds of each class into <out>/<class>/ and a spectrogram grid "
        "(the DVC sample stage)",
    )
    add("--sample-rate", type=int, help="sample rate of an original Dance Diffusion checkpoint")
    add("--length", type=int, help="clip length (samples) of an original DD checkpoint")
    add("--params", type=Path, default=Path("params.yaml"), help="parameters file (params.yaml)")
    add("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def _mode(args: argparse.Namespace) -> str:
    """generate, variation, inpaint or interpolate, from the flags (which must agree)."""
    if args.interpolate is not None:
        if args.init is not None or args.every_class:
            raise UsageError("--interpolate goes alone: not with --init or --every-class")
        if args.n is not None:
            raise UsageError("--interpolate takes --frames, not --n")
        return "interpolate"
    if args.init is not None:
        if args.every_class:
            raise UsageError("--init goes alone: not with --every-class")
        return "inpaint" if args.keep_ms is not None else "variation"
    if args.strength is not None or args.keep_ms is not None:
        raise UsageError("--strength and --keep-ms need --init WAV")
    if args.every_class and args.cls is not None:
        raise UsageError("--every-class samples every class: leave out --class")
    return "generate"


# ----------------------------------------------------------------------------- the modes

Done = tuple[list[Path], str, Path]  # what a mode did: the files written, what they are, where


@dataclass(frozen=True)
class Job:
    """What every mode shares: the command line, params.yaml, the model and how to sample."""

    args: argparse.Namespace
    params: Params
    mode: str
    model: Denoiser
    s: Settings
    label: int | None
    bit_depth: int
    started: float  # perf_counter() when the work began
    base: dict[str, Any]  # the samples.csv columns every row shares

    @property
    def target(self) -> float:
        """New sounds' peak (``sample.peak_db``) as an amplitude."""
        return db_to_amp(self.params.sample.peak_db)

    def n(self, key: str = "n") -> int:
        """--n, else ``sample.<key>``."""
        arg = self.args.n
        return getattr(self.params.sample, key) if arg is None else flag(key, arg, "--n")

    def write(
        self, clips: np.ndarray, names: list[str], folder: Path, rows: list[dict[str, Any]]
    ) -> list[Path]:
        """The WAVs ``<folder>/<name>.wav`` and their ledger rows (``rows``: each file's own
        columns, over the ones every file shares)."""
        rows = [
            {**self.base, "path": f"{nm}.wav", **row} for nm, row in zip(names, rows, strict=True)
        ]
        sr = self.model.sample_rate
        return write_clips(clips, names, folder, sr, self.bit_depth, rows)


def prepare(args: argparse.Namespace, params: Params, mode: str) -> Job:
    """Check every flag, load the checkpoint; nothing is written yet."""
    cfg = params.sample
    s = settings(args, cfg, mode)
    if mode == "generate":  # from noise; variations and interpolations keep their input's form
        s = replace(s, finish=finishing(params))
    bit_depth = int(args.bit_depth or cfg.bit_depth)
    if args.keep_ms is not None and not (math.isfinite(args.keep_ms) and args.keep_ms > 0):
        raise UsageError(f"--keep-ms must be a positive number of milliseconds, got {args.keep_ms}")
    if not args.checkpoint.is_file():
        hint = " (run `dvc repro train` first)" if args.checkpoint == CHECKPOINT else ""
        raise UsageError(f"{args.checkpoint}: no such checkpoint{hint}")
    try:
        model = load_model(args.checkpoint)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    clip_format(args, model)
    model = model.to(s.device)
    label = class_label(model, args.cls)
    guided_somewhere = args.every_class or label is not None
    if model.class_names and not guided_somewhere and args.guidance not in (None, 1.0):
        print("sample: note: --guidance needs --class; sampling unconditionally", file=sys.stderr)
    if args.hit_ms is not None and (model.length_counts is None or mode != "generate"):
        print("sample: note: --hit-ms needs a model told lengths and new sounds", file=sys.stderr)
    started = time.perf_counter()
    base = {
        "steps": s.steps,
        "rho": s.rho,
        "sampler": s.sampler,
        "guidance": s.guidance if label is not None else 1.0,
        "checkpoint": str(args.checkpoint),
        "checkpoint_sha256": sha256_file(args.checkpoint),
        "sample_rate": model.sample_rate,
        "num_samples": model.length,
        "channels": model.data_channels,
        "bit_depth": bit_depth,
        "device": str(s.device),
    }
    return Job(args, params, mode, model, s, label, bit_depth, started, base)


def run_generate(job: Job) -> Done:
    """New sounds: --class (or the null class), or every class (the DVC stage)."""
    args, s, model = job.args, job.s, job.model
    n = int(job.n("n_per_class" if args.every_class else "n"))
    todo = (
        [(c, i) for i, c in enumerate(model.class_names)] or [(UNCONDITIONAL, None)]
        if args.every_class
        else [(args.cls or UNCONDITIONAL, job.label)]
    )
    root = args.out or SAMPLES_DIR
    folders = {
        name: out_folder(root / name if args.every_class or args.out is None else root)
        for name, _ in todo
    }
    noise = sampling.make_noise(n, (model.data_channels, model.length), s.seed)
    grid: dict[str, list[Path]] = {}
    for name, lab in todo:
        clips = peak_to(sampling.generate(model, noise, lab, s).numpy(), job.target)
        names = [f"{name}_{s.seed}_{i}" for i in range(n)]
        rows = [
            {"mode": "generate", "class": name, "index": i, "seed": s.seed,
             "guidance": s.guidance if lab is not None else 1.0}
            for i in range(n)
        ]  # fmt: skip
        grid[name] = job.write(clips, names, folders[name], rows)
    written = [path for paths in grid.values() for path in paths]
    if args.every_class:
        from core.spectrograms import spectrogram_grid

        spectrogram_grid(grid, root / GRID_NAME, f"generated, seed {s.seed} (log-mel)")
        return written, f"{plural(n, 'sound')} per class", root
    return written, f"{n} {args.cls or UNCONDITIONAL}", written[0].parent


def run_from_init(job: Job) -> Done:
    """Variations of --init, or new tails after its first --keep-ms (inpainting)."""
    args, s, model, inpainting = job.args, job.s, job.model, job.mode == "inpaint"
    sr = model.sample_rate
    n = int(job.n())
    strength = args.strength
    if strength is None:
        strength = 1.0 if inpainting else job.params.sample.strength
    strength = float(flag("strength", strength, "--strength"))
    keep = 0
    if inpainting:
        keep = round(float(args.keep_ms) * sr / 1000)
        if not 0 < keep < model.length:
            raise UsageError(
                f"--keep-ms must be more than 0 and less than the clip "
                f"({1000 * model.length / sr:.0f} ms), got {args.keep_ms}"
            )
    x = load_init(args.init, model, job.params)
    out_dir = out_folder(args.out or OUT_ROOT / ("inpaint" if inpainting else "variations"))
    gain = job.target / peak(x)  # the model hears sounds at the level it made them
    init, noise = torch.from_numpy(x * gain), sampling.make_noise(n, x.shape, s.seed)
    if inpainting:
        clips = sampling.inpaint(model, init, noise, keep, strength, job.label, s).numpy() / gain
    else:
        clips = sampling.variation(model, init, noise, strength, job.label, s).numpy() / gain
    if strength == 0:
        clips[:] = x  # exactly the input, not x * g / g
    elif keep:
        fade_n = round(job.params.sample.inpaint_fade_ms * sr / 1000)
        clips = sampling.join_head(x, clips, keep, fade_n)  # the input's own samples, not x * g / g
    else:
        clips = no_clipping(clips)
    tag = "tail" if inpainting else (f"to-{args.cls}" if args.cls else "var")
    names = [f"{args.init.stem}_{tag}_{s.seed}_{i}" for i in range(n)]
    rows = [
        {"mode": job.mode, "class": args.cls or "", "index": i, "seed": s.seed,
         "strength": strength, "keep_ms": args.keep_ms or "", "init": str(args.init)}
        for i in range(n)
    ]  # fmt: skip
    written = job.write(clips, names, out_dir, rows)
    towards = f", towards {args.cls}" if args.cls else ""
    if inpainting:
        what = f"{plural(n, 'new tail')} for {args.init.name} after {args.keep_ms:g} ms"
    else:
        what = f"{plural(n, 'variation')} of {args.init.name}"
    return written, f"{what} (strength {strength:g}{towards})", out_dir


def run_interpolate(job: Job) -> Done:
    """Frames from one sound to another, both ends included."""
    args, model = job.args, job.model
    given = args.frames
    frames = int(job.params.sample.frames if given is None else flag("frames", given, "--frames"))
    a_path, b_path = args.interpolate
    xa, xb = load_init(a_path, model, job.params), load_init(b_path, model, job.params)
    out_dir = out_folder(args.out or OUT_ROOT / "interpolations")
    ga, gb = job.target / peak(xa), job.target / peak(xb)
    a, b = torch.from_numpy(xa * ga), torch.from_numpy(xb * gb)
    clips = sampling.interpolate(model, a, b, frames, job.label, job.s).numpy()
    w = np.linspace(0, 1, frames)
    gains = np.exp((1 - w) * math.log(ga) + w * math.log(gb))  # the level glides too
    clips = clips / gains[:, None, None]
    names = [f"{a_path.stem}_to_{b_path.stem}_{i:02d}" for i in range(frames)]
    rows = [
        {"mode": "interpolate", "class": args.cls or "", "index": i, "seed": "",
         "init": f"{a_path} {b_path}", "weight": f"{w[i]:.4f}"}
        for i in range(frames)
    ]  # fmt: skip
    written = job.write(no_clipping(clips), names, out_dir, rows)
    return written, f"{plural(frames, 'frame')} from {a_path.name} to {b_path.name}", out_dir


MODES: dict[str, Callable[[Job], Done]] = {
    "generate": run_generate,
    "variation": run_from_init,
    "inpaint": run_from_init,
    "interpolate": run_interpolate,
}


def run(args: argparse.Namespace) -> str:
    """Do what the command line asks; returns the summary line."""
    mode = _mode(args)
    if args.frames is not None and mode != "interpolate":
        raise UsageError("--frames belongs to --interpolate")
    job = prepare(args, core_params.load(args.params), mode)
    written, what, where = MODES[mode](job)
    took = time.perf_counter() - job.started
    s, sr, length = job.s, job.model.sample_rate, job.model.length
    seconds = len(written) * length / sr
    return (
        f"sample: wrote {plural(len(written), 'file')} ({what}; {sr} Hz, {length} "
        f"samples, {job.bit_depth}-bit) to {where}/ in {took:.1f} s on {s.device} "
        f"({s.sampler}, {plural(s.steps, 'step')}, real-time factor "
        f"{seconds / max(took, 1e-9):.2f}); {CSV_NAME} beside them"
    )


def main(argv: list[str] | None = None) -> int:
    """The command: its summary line on stdout, or one error line on stderr; the exit status."""
    args = parse_args(argv)
    try:
        print(run(args))
    except (UsageError, ConfigError) as exc:
        print(f"sample: error: {exc}", file=sys.stderr)
        return 2
    except torch.OutOfMemoryError:
        print("sample: error: out of device memory; try a smaller --batch-size", file=sys.stderr)
        return 1
    except OSError as exc:  # WriteError, or the csv or grid beside the files
        reason = exc.strerror if exc.filename else str(exc)
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        print(
            f"sample: error: {where}{reason}; files written before it are complete", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("sample: interrupted; files written so far are complete", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
