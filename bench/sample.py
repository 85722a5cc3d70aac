"""Benchmark: seconds to sample 16 one-second sounds, per sampler and step count.

    python bench/sample.py                 # CPU: the trained models/model.pt (tiny), ddim and
                                           # dpmpp-2m at 10, 25, 50 and 100 steps, fp32
    python bench/sample.py --device cuda --compile both
                                           # GPU: the dance-diffusion preset (random weights),
                                           # bf16, eager and torch.compile
    python bench/sample.py --preset dance-diffusion --checkpoint none --n 1 --steps 2 \\
        --seconds 0.1                      # a smoke run of the full network on the CPU

Every run goes through the sampling CLI's own code: ``training.sample.settings`` (device,
precision, cuDNN determinism), ``make_noise`` and ``generate`` (batches, autocast,
``guided_v`` for classifier-free guidance, ``solve``). The time of one run is the wall time of
``generate`` for all ``--n`` sounds (noise to the device, every solver step, clips back to the
host), after a warm-up run per variant (which includes torch.compile's compilation), with
``torch.cuda.synchronize`` around GPU runs; the median of ``--repeats`` runs is reported.
Real-time factor = seconds of audio made / wall seconds.

Accuracy: every run's clips are compared with a reference from the same noise and class,
``--reference-steps`` (100) steps of DDIM in fp32 without compile: the relative L2 distance
``||x - ref|| / ||ref||`` over all clips, and the mean absolute difference of their log-mel
spectrograms in dB (64 mels, each clip's reference peak at 0 dB, floor -80 dB). With random
weights the ODE is that of an untrained network: the distances then measure the solver on that
ODE, not the quality of sounds, and the output says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import ConfigError, load_params, section  # noqa: E402
from pipeline.report import log_mel  # noqa: E402
from training.checkpoints import load_model  # noqa: E402
from training.diffusion import SAMPLERS  # noqa: E402
from training.model import Denoiser, build_model, count_parameters  # noqa: E402
from training.sample import (  # noqa: E402
    CHECKPOINT,
    UNCONDITIONAL,
    Settings,
    UsageError,
    class_label,
    generate,
    make_noise,
    settings,
)

NONE = "none"  # --checkpoint none: random weights; --class none: the null class, no guidance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/sample.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--device", choices=["cpu", "cuda"], default="cpu", help="where to sample (cpu)")
    add(
        "--checkpoint",
        help=f"model file, or '{NONE}' for random weights of --preset (default: {CHECKPOINT} if "
        "it exists and no --preset is given, else random weights)",
    )
    add(
        "--preset",
        help="random weights of this params.yaml preset (default: model.preset; with "
        "--device cuda: dance-diffusion)",
    )
    add("--samplers", default=",".join(SAMPLERS), help="comma-separated samplers (all)")
    add("--steps", default="10,25,50,100", help="comma-separated step counts (10,25,50,100)")
    add("--n", type=int, default=16, help="sounds per run (16)")
    add("--batch-size", type=int, help="sounds per forward pass (default: --n)")
    add(
        "--class",
        dest="classes",
        help=f"comma-separated classes to sample, '{NONE}' = unconditional (default: the "
        "model's first class, or none for an unconditional model)",
    )
    add("--guidance", type=float, help="classifier-free guidance scale (params sample.guidance)")
    add(
        "--precision",
        help="comma-separated: bf16 (autocast) and/or fp32 (default: cuda bf16, cpu fp32)",
    )
    add(
        "--compile",
        nargs="?",
        const="on",
        default="off",
        choices=["off", "on", "both"],
        help="torch.compile the model: --compile (on), --compile both (eager and compiled), "
        "default off",
    )
    add(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile mode (default)",
    )
    add(
        "--cudnn-benchmark",
        action="store_true",
        help="let cuDNN pick the fastest kernels (the sampling CLI turns this off and asks for "
        "deterministic kernels, so that a seed gives the same files)",
    )
    add("--sample-rate", type=int, help="Hz (default: the checkpoint's, else audio.sample_rate)")
    add("--seconds", type=float, default=1.0, help="length of each sound (1.0)")
    add("--reference-steps", type=int, default=100, help="steps of the fp32 DDIM reference (100)")
    add("--repeats", type=int, help="timed runs per configuration, median kept (cpu 1, cuda 3)")
    add("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    add("--seed", type=int, default=0, help="noise seed (0)")
    add("--params", type=Path, default=ROOT / "params.yaml", help="parameters file")
    add("--json", type=Path, help="also write every figure to this file")
    return parser.parse_args(argv)


def _list(text: str, name: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UsageError(f"{name} is empty")
    return items


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(x) for x in _list(text, name)]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated integers, got {text!r}") from None
    if min(values) < 1:
        raise UsageError(f"{name} must be at least 1, got {text!r}")
    return values


# ----------------------------------------------------------------------------- the model


def bench_model(args: argparse.Namespace, params: dict[str, Any]) -> tuple[Denoiser, str]:
    """The model to time and a description of its weights ("trained: path" or "random")."""
    ckpt = args.checkpoint
    if ckpt is None:
        default = ROOT / CHECKPOINT
        ckpt = str(default) if args.preset is None and default.is_file() else NONE
    if ckpt != NONE:
        if args.preset is not None:
            raise UsageError("--preset is for random weights: give it with --checkpoint none")
        path = Path(ckpt)
        if not path.is_file():
            raise UsageError(f"{path}: no such checkpoint (or give --checkpoint none)")
        try:
            model = load_model(path, sample_rate=args.sample_rate)
            length = round(model.sample_rate * args.seconds)  # at the checkpoint's own rate
            if model.length != length:
                model = load_model(path, sample_rate=model.sample_rate, length=length)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return model, f"trained: {path}"
    audio = section(params, "audio")
    sr = args.sample_rate or int(audio["sample_rate"])
    preset = args.preset or ("dance-diffusion" if args.device == "cuda" else None)
    model_cfg = dict(section(params, "model"))
    if preset is not None:
        model_cfg["preset"] = preset
    local = {**params, "model": model_cfg, "audio": {**audio, "sample_rate": sr}}
    local["audio"]["duration"] = args.seconds
    classes = [str(c) for c in section(params, "label").get("classes") or []]
    torch.manual_seed(0)
    return build_model(local, classes).eval(), "random"


# ----------------------------------------------------------------------------- measuring


class EvalCounter:
    """Counts network calls and the clips they saw (a forward pre-hook on the eager model while
    attached): the model evaluations a sampler really made, guidance's doubled batch included.
    Never attached under torch.compile, which would guard on the counts and recompile."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.calls = self.rows = 0

    def _hook(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.calls += 1
        self.rows += int(inputs[0].shape[0])

    @contextlib.contextmanager
    def attached(self) -> Iterator[EvalCounter]:
        self.calls = self.rows = 0
        handle = self.model.register_forward_pre_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(
    model: nn.Module, noise: Tensor, label: int | None, s: Settings, repeats: int
) -> tuple[Tensor, list[float]]:
    """``repeats`` timed runs of the CLI's ``generate``: the last run's clips and every time."""
    times, out = [], noise
    for _ in range(repeats):
        _sync(s.device)
        start = time.perf_counter()
        out = generate(model, noise, label, s)
        _sync(s.device)
        times.append(time.perf_counter() - start)
    return out, times


@torch.no_grad()
def row_flops(model: nn.Module, device: torch.device) -> float:
    """FLOPs of one network call on one clip (torch's flop counter on a real forward): what a
    run costs is this times its network rows, whatever the precision or compilation."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.data_channels, model.length, device=device)
    t = torch.full((1,), 0.5, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x, t)
    return float(counter.get_total_flops())


def _log_mel_db(clips: np.ndarray, sr: int, refs: np.ndarray) -> np.ndarray:
    """Log-mel (the project's spectrogram, ``pipeline.report.log_mel``) in dB of each mono
    clip, 0 dB at the peak of the same clip's reference, floored at -80 dB."""
    import librosa

    out = []
    for y, r in zip(clips, refs, strict=True):
        ref_peak = float(log_mel(r, sr).max())
        db = librosa.power_to_db(log_mel(y, sr), ref=max(ref_peak, 1e-20), amin=1e-20, top_db=None)
        out.append(np.clip(db, -80.0, None))
    return np.stack(out)


def distances(x: Tensor, ref: Tensor, sr: int) -> dict[str, float | None]:
    """Relative L2 over all clips, and the mean |dB| difference of their log-mel spectrograms
    (None where librosa is not installed, as on a bare GPU machine)."""
    rel = float((x - ref).norm() / ref.norm().clamp_min(1e-12))
    try:
        import librosa  # noqa: F401
    except ImportError:
        return {"rel_l2": rel, "log_mel_db": None}
    xm, rm = x.mean(dim=1).numpy(), ref.mean(dim=1).numpy()  # mono views [n, N]
    mel_db = float(np.abs(_log_mel_db(xm, sr, rm) - _log_mel_db(rm, sr, rm)).mean())
    return {"rel_l2": rel, "log_mel_db": mel_db}


def machine(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    return info


# ----------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _sounds(n: int) -> str:
    return f"{n} sound{'' if n == 1 else 's'}"


def _num(x: float) -> str:
    """Two decimals, three significant digits below 0.1, none from 100 up."""
    return f"{x:.0f}" if x >= 100 else f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def markdown(results: dict[str, Any]) -> str:
    """The table for BENCHMARKS.md."""
    cuda = results["device"] == "cuda"
    head = (
        "| class (guidance) | precision | compile | sampler | steps | network evals | "
        f"s / {_sounds(results['n'])} | real-time factor | rel. L2 vs ref | log-mel dB vs ref |"
    )
    rule = "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    if cuda:
        head += " TFLOP/s | peak GPU memory |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for r in results["runs"]:
        cls = f"{r['class']} ({r['guidance']:g})"
        evals = f"{r['evals']} ({r['rows_per_sound']:g}x)"
        row = (
            f"| {cls} | {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['sampler']} | "
            f"{r['steps']} | {evals} | {_num(r['seconds'])} | {_num(r['real_time_factor'])} | "
            f"{_fmt(r.get('rel_l2'), '.4f')} | {_fmt(r.get('log_mel_db'), '.2f')} |"
        )
        if cuda:
            row += f" {r['tflops']:.0f} | {_fmt(r.get('peak_gpu_gib'), '.1f')} GiB |"
        lines.append(row)
    return "\n".join(lines)


def describe(results: dict[str, Any]) -> str:
    m = results["machine"]
    where = f"{m['cpu']}, {m['cores']} cores"
    if "gpu" in m:
        where = f"{m['gpu']} (CUDA {m['cuda']}), host {where}"
    ref = results["reference"]
    lines = [
        f"Machine: {where}; torch {m['torch']}, {m['threads']} threads "
        f"(OMP_NUM_THREADS={m['omp_num_threads']}), Python {m['python']}, "
        f"load average {m['load_average']:.1f} at the start.",
        f"Model: {results['preset']} preset, {results['params_m']:.2f} M weights, "
        f"{results['weights']}; {_sounds(results['n'])} of {results['seconds_audio']:g} s "
        f"({results['length']} samples at {results['sample_rate']} Hz), batch "
        f"{results['batch_size']}, seed {results['seed']}; one network call on one clip: "
        f"{results['gflop_per_row']:.1f} GFLOP.",
        f"Reference: {ref['steps']}-step DDIM, fp32, eager, same noise and class "
        f"({ref['seconds']:.2f} s, "
        f"{'timed as a row' if ref['is_row'] else 'one cold run, start-up included'}).",
        "Network evals: model calls per run (x: network rows per sound; 2 = guidance runs "
        "the conditional and the null class together).",
    ]
    if results["weights"] == "random":
        lines.append(
            "Random weights: the distances measure the solvers on an untrained network's ODE, "
            "not the quality of sounds."
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every configuration; returns the figures."""
    cuda = args.device == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    samplers = _list(args.samplers, "--samplers")
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise UsageError(f"unknown sampler {unknown[0]!r}; known: {', '.join(SAMPLERS)}")
    steps_list = _int_list(args.steps, "--steps")
    precisions = _list(args.precision or ("bf16" if cuda else "fp32"), "--precision")
    if any(p not in ("bf16", "fp32") for p in precisions):
        raise UsageError(f"--precision takes bf16 and/or fp32, got {args.precision!r}")
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    repeats = args.repeats or (3 if cuda else 1)
    if min(args.n, repeats, args.reference_steps) < 1 or args.seconds <= 0:
        raise UsageError("--n, --repeats, --reference-steps and --seconds must be positive")

    params = load_params(args.params)
    cfg = section(params, "sample")
    model, weights = bench_model(args, params)
    device = torch.device(args.device)

    def make_settings(sampler: str, steps: int, precision: str) -> Settings:
        ns = argparse.Namespace(
            sampler=sampler,
            device=args.device,
            steps=steps,
            guidance=args.guidance,
            seed=args.seed,
            batch_size=args.batch_size or args.n,
            no_progress=True,
        )
        return settings(ns, {**cfg, "precision": precision}, "generate")

    base = make_settings("ddim", args.reference_steps, "fp32")  # also checks the device
    if args.cudnn_benchmark and cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
    model = model.to(device)
    counter = EvalCounter(model)
    flops = row_flops(model, device)
    names = (
        _list(args.classes, "--class")
        if args.classes
        else [model.class_names[0] if model.class_names else NONE]
    )
    labels = [(name, class_label(model, None if name == NONE else name)) for name in names]
    noise = make_noise(args.n, (model.data_channels, model.length), args.seed)
    compiled: dict[bool, Callable[..., Any]] = {False: model}
    if True in compiles:
        compiled[True] = torch.compile(model, mode=args.compile_mode)

    results: dict[str, Any] = {
        "device": args.device,
        "machine": machine(device),
        "preset": model.preset["name"],
        "params_m": count_parameters(model) / 1e6,
        "weights": weights,
        "n": args.n,
        "batch_size": base.batch_size,
        "seed": args.seed,
        "sample_rate": model.sample_rate,
        "length": model.length,
        "seconds_audio": model.length / model.sample_rate,
        "compile_mode": args.compile_mode if True in compiles else None,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "gflop_per_row": flops / 1e9,
        "runs": [],
    }
    audio_seconds = args.n * model.length / model.sample_rate
    ref_key = ("ddim", args.reference_steps, "fp32", False)
    grid = [
        (sampler, steps, precision, comp)
        for precision in precisions
        for comp in compiles
        for sampler in samplers
        for steps in steps_list
    ]
    ref_in_grid = ref_key in grid
    if ref_in_grid:  # time the reference as its row, first, so every other row can use it
        grid.remove(ref_key)
        grid.insert(0, ref_key)
    warmed: set[tuple[str, str, bool]] = set()  # a class may change the batch: new shapes
    bar = tqdm(total=len(labels) * (len(grid) + (not ref_in_grid)), desc="sampling runs")
    for name, label in labels:
        guided = label is not None and base.guidance != 1.0
        cls = UNCONDITIONAL if label is None else name
        guidance = base.guidance if guided else 1.0
        ref: Tensor | None = None
        if not ref_in_grid:
            bar.set_postfix_str(f"{cls}: reference ddim {args.reference_steps} fp32")
            ref, ref_times = timed_runs(model, noise, label, base, 1)
            results["reference"] = {"steps": args.reference_steps, "seconds": ref_times[0]}
            bar.update()
        for sampler, steps, precision, comp in grid:
            bar.set_postfix_str(
                f"{cls}: {sampler} {steps} {precision}{' compiled' if comp else ''}"
            )
            s = make_settings(sampler, steps, precision)
            if args.cudnn_benchmark and cuda:
                torch.backends.cudnn.benchmark = True
                torch.backends.cudnn.deterministic = False
            net = compiled[comp]
            if (cls, precision, comp) not in warmed:  # compilation, kernel choice, allocator
                generate(net, noise, label, replace(s, steps=2))
                _sync(device)
                warmed.add((cls, precision, comp))
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            if comp:  # not counted (see EvalCounter): one call per step and batch, as eager
                out, times = timed_runs(net, noise, label, s, repeats)
                evals = steps * -(-args.n // s.batch_size)
                rows = steps * args.n * (2 if guided else 1)
            else:
                with counter.attached():
                    out, times = timed_runs(net, noise, label, s, repeats)
                evals, rows = counter.calls // repeats, counter.rows // repeats
            seconds = statistics.median(times)
            row: dict[str, Any] = {
                "class": cls,
                "guidance": guidance,
                "precision": precision,
                "compile": comp,
                "sampler": sampler,
                "steps": steps,
                "evals": evals,
                "evals_counted": not comp,
                "rows_per_sound": rows / (steps * args.n),
                "seconds": seconds,
                "times": times,
                "real_time_factor": audio_seconds / seconds,
                "tflop": rows * flops / 1e12,
                "tflops": rows * flops / seconds / 1e12,
            }
            if (sampler, steps, precision, comp) == ref_key and ref is None:
                ref = out
                results["reference"] = {"steps": args.reference_steps, "seconds": seconds}
            assert ref is not None
            row.update(distances(out, ref, model.sample_rate))
            if cuda:
                row["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            results["runs"].append(row)
            bar.update()
    bar.close()
    order = {UNCONDITIONAL if lab is None else name: i for i, (name, lab) in enumerate(labels)}
    results["runs"].sort(
        key=lambda r: (order[r["class"]], r["precision"], r["compile"], r["sampler"],
                       r["steps"])
    )  # fmt: skip
    results["reference"]["is_row"] = ref_in_grid
    results["machine"]["load_average_end"] = (
        os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (UsageError, ConfigError) as exc:
        print(f"bench/sample.py: error: {exc}", file=sys.stderr)
        return 2
    print(describe(results))
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    parts = []
    for sampler in dict.fromkeys(r["sampler"] for r in results["runs"]):
        few = [r for r in results["runs"] if r["sampler"] == sampler and r["steps"] <= 25]
        if few:  # the most steps up to 25, in its fastest variant
            most = max(r["steps"] for r in few)
            r = min((r for r in few if r["steps"] == most), key=lambda r: r["seconds"])
            parts.append(
                f"{sampler} {most} steps {r['seconds']:.2f} s (real-time factor "
                f"{r['real_time_factor']:.1f}, rel. L2 {r['rel_l2']:.4f})"
            )
    print(
        f"\nbench/sample.py: {len(results['runs'])} runs of {_sounds(results['n'])} on "
        f"{args.device}" + (f"; {'; '.join(parts)}" if parts else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
