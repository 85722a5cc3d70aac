"""Benchmark: seconds to sample 16 one-second sounds, per sampler and step count.

    python bench/sample.py                 # CPU: the trained models/model.pt (tiny), ddim and
                                           # dpmpp-2m at 10, 25, 50 and 100 steps, fp32
    python bench/sample.py --device cuda --compile both
                                           # GPU: the dance-diffusion preset (random weights),
                                           # bf16, eager and torch.compile
    python bench/sample.py --preset dance-diffusion --checkpoint none --n 1 --steps 2 \\
        --seconds 0.1                      # a smoke run of the full network on the CPU

Every run goes through the sampling CLI's own code: ``training.sample_inputs.settings``
(device, precision, cuDNN determinism), ``training.sampling``'s ``make_noise`` and
``generate`` (batches, autocast,
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
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sample_measure import (  # noqa: E402
    NONE,
    EvalCounter,
    bench_model,
    bench_settings,
    distances,
    machine,
    row_flops,
    sync,
    timed_runs,
)
from bench.sample_report import describe, markdown, sounds  # noqa: E402
from core import params as core_params  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from core.params import SAMPLERS, Sample  # noqa: E402
from training.model import Denoiser, count_parameters  # noqa: E402
from training.sample import CHECKPOINT, UNCONDITIONAL  # noqa: E402
from training.sample_inputs import UsageError, class_label  # noqa: E402
from training.sampling import Settings, generate, make_noise  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    # One flat list of flags, in --help's order: split, it would read worse than its length.
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


# ----------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Bench:
    """What every timed run shares: the model (eager and compiled), its noise and counters."""

    args: argparse.Namespace
    cfg: Sample  # params.yaml's sample section
    guidance: float  # --guidance, else sample.guidance
    model: Denoiser
    compiled: dict[bool, Callable[..., Any]]
    counter: EvalCounter
    noise: Tensor
    flops: float  # of one network call on one clip
    repeats: int
    ref_key: tuple[str, int, str, bool]  # (sampler, steps, precision, compiled) of the reference

    @property
    def device(self) -> torch.device:
        return torch.device(self.args.device)

    def settings(self, sampler: str, steps: int, precision: str) -> Settings:
        return bench_settings(self.args, self.cfg, sampler, steps, precision)


def _plan(args: argparse.Namespace) -> tuple[list[str], list[int], list[str], list[bool], int]:
    """The flags' lists, checked: samplers, step counts, precisions, compile or not, repeats."""
    cuda = args.device == "cuda"
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
    return samplers, steps_list, precisions, compiles, repeats


def _results(bench: Bench, weights: str, base: Settings, compiles: list[bool]) -> dict[str, Any]:
    """The figures' header: what was measured, on what."""
    args, model = bench.args, bench.model
    return {
        "device": args.device,
        "machine": machine(bench.device),
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
        "gflop_per_row": bench.flops / 1e9,
        "runs": [],
    }


def _timed_row(
    bench: Bench, cls: str, label: int | None, key: tuple[str, int, str, bool], guided: bool
) -> tuple[dict[str, Any], Tensor]:
    """One configuration's figures (not yet its distances) and its clips."""
    args, (sampler, steps, precision, comp) = bench.args, key
    s = bench.settings(sampler, steps, precision)
    net = bench.compiled[comp]
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats(bench.device)
    if comp:  # not counted (see EvalCounter): one call per step and batch, as eager
        out, times = timed_runs(net, bench.noise, label, s, bench.repeats)
        evals = steps * -(-args.n // s.batch_size)
        rows = steps * args.n * (2 if guided else 1)
    else:
        with bench.counter.attached():
            out, times = timed_runs(net, bench.noise, label, s, bench.repeats)
        evals, rows = bench.counter.calls // bench.repeats, bench.counter.rows // bench.repeats
    seconds = statistics.median(times)
    audio_seconds = args.n * bench.model.length / bench.model.sample_rate
    row = {
        "class": cls,
        "guidance": bench.guidance if guided else 1.0,
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
        "tflop": rows * bench.flops / 1e12,
        "tflops": rows * bench.flops / seconds / 1e12,
    }
    return row, out


def _runs_of_class(
    bench: Bench,
    name: str,
    label: int | None,
    grid: list[tuple[str, int, str, bool]],
    results: dict[str, Any],
    bar: Any,
    warmed: set[tuple[str, str, bool]],
) -> None:
    """Every configuration of the grid for one class, each compared with the reference."""
    args = bench.args
    guided = label is not None and bench.guidance != 1.0
    cls = UNCONDITIONAL if label is None else name
    ref: Tensor | None = None
    if bench.ref_key not in grid:
        bar.set_postfix_str(f"{cls}: reference ddim {args.reference_steps} fp32")
        base = bench.settings("ddim", args.reference_steps, "fp32")
        ref, ref_times = timed_runs(bench.model, bench.noise, label, base, 1)
        results["reference"] = {"steps": args.reference_steps, "seconds": ref_times[0]}
        bar.update()
    for key in grid:
        sampler, steps, precision, comp = key
        bar.set_postfix_str(f"{cls}: {sampler} {steps} {precision}{' compiled' if comp else ''}")
        if (cls, precision, comp) not in warmed:  # compilation, kernel choice, allocator
            s = bench.settings(sampler, steps, precision)
            generate(bench.compiled[comp], bench.noise, label, replace(s, steps=2))
            sync(bench.device)
            warmed.add((cls, precision, comp))
        row, out = _timed_row(bench, cls, label, key, guided)
        if key == bench.ref_key and ref is None:
            ref = out
            results["reference"] = {"steps": args.reference_steps, "seconds": row["seconds"]}
        assert ref is not None
        row.update(distances(out, ref, bench.model.sample_rate))
        if args.device == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated(bench.device) / 2**30
        results["runs"].append(row)
        bar.update()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every configuration; returns the figures."""
    if args.threads:
        torch.set_num_threads(args.threads)
    samplers, steps_list, precisions, compiles, repeats = _plan(args)
    params = core_params.load(args.params)
    model, weights = bench_model(args, params)
    device = torch.device(args.device)
    reference = ("ddim", args.reference_steps, "fp32")
    base = bench_settings(args, params.sample, *reference)  # also checks the device
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
    bench = Bench(args, params.sample, base.guidance, model, compiled, counter, noise, flops,
                  repeats, (*reference, False))  # fmt: skip
    results = _results(bench, weights, base, compiles)
    grid = [
        (sampler, steps, precision, comp)
        for precision in precisions
        for comp in compiles
        for sampler in samplers
        for steps in steps_list
    ]
    ref_in_grid = bench.ref_key in grid
    if ref_in_grid:  # time the reference as its row, first, so every other row can use it
        grid.remove(bench.ref_key)
        grid.insert(0, bench.ref_key)
    warmed: set[tuple[str, str, bool]] = set()  # a class may change the batch: new shapes
    bar = tqdm(total=len(labels) * (len(grid) + (not ref_in_grid)), desc="sampling runs")
    for name, label in labels:
        _runs_of_class(bench, name, label, grid, results, bar, warmed)
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
        f"\nbench/sample.py: {len(results['runs'])} runs of {sounds(results['n'])} on "
        f"{args.device}" + (f"; {'; '.join(parts)}" if parts else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
