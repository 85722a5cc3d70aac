"""Benchmark: training throughput and peak memory per preset, batch size and precision.

    python bench/train.py                      # CPU: fold at batch 8, tiny at 2 and 8, 1-s clips
    python bench/train.py --configs dance-diffusion:1 --steps 1   # the full network, CPU
    python bench/train.py --device cuda        # GPU: dance-diffusion (batch 8) and fold (64),
                                               # 65,536 samples: fp32 eager, bf16 eager,
                                               # bf16 + torch.compile
    python bench/train.py --device cuda --configs fold:64 \
        --variants 32-true+compile,bf16-mixed+compile   # only the compiled rows
    python bench/train.py --load-clips 2000    # also: decoding a training set into memory

Each configuration runs in a fresh process (so its peak memory is its own) through the
trainer's own code: ``training.config.make_fabric`` (precision, device) and
``training.train.train_step`` (forward, backward, clipping, AdamW, EMA). A step is timed after
warm-up steps (which include compilation). FLOPs of one step's forward and backward are counted
with ``torch.utils.flop_counter``; on a GPU the achieved TFLOP/s is compared with a measured
bf16 matmul peak.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ["kick", "snare", "hihat", "clap"]


def matmul_peak_tflops(device: str, n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 matmul throughput: the ceiling the training step is compared with."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def _setup(job: dict[str, Any]) -> tuple[Any, ...]:
    """The job's model, optimizer and EMA on its Fabric, as the trainer sets them up."""
    import torch

    from core import params as core_params
    from training.config import build_model, length_measure, make_fabric
    from training.diffusion import make_ema

    params = core_params.load(ROOT / "params.yaml")
    sr = params.audio.sample_rate
    params = dataclasses.replace(
        params,
        model=dataclasses.replace(params.model, preset=job["preset"]),
        audio=dataclasses.replace(
            params.audio, duration=job["length"] / sr, channels=job["channels"]
        ),
    )
    cfg = dataclasses.replace(
        params.train,
        batch_size=job["batch"],
        grad_accum=1,
        devices=1,
        accelerator=job["device"],
        precision=job["precision"],
        init_checkpoint="",
    )
    fabric = make_fabric(cfg)
    fabric.launch()
    torch.manual_seed(0)
    raw = build_model(params, CLASSES)
    lengths_of = length_measure(params, raw)
    model = torch.compile(raw) if job["compile"] else raw
    optimizer = torch.optim.AdamW(raw.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    model, optimizer = fabric.setup(model, optimizer)
    return fabric, cfg, raw, model, optimizer, make_ema(raw, cfg.ema_decay), lengths_of


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in this process: samples/s, FLOPs, peak memory."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from training import train as tt
    from training.config import resolve_precision
    from training.diffusion import training_loss
    from training.model import count_parameters

    fabric, cfg, raw, model, optimizer, ema, lengths_of = _setup(job)
    device = fabric.device
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(cfg.batch_size, job["channels"], job["length"]) * 0.3
    # lengths as the trainer measures them, for a model conditioned on length (fold)
    lens = None if lengths_of is None else lengths_of(x).to(device)
    x, y = x.to(device), torch.randint(0, len(CLASSES), (cfg.batch_size,)).to(device)
    batches = [(x, y, lens)]

    with FlopCounterMode(display=False) as counter, fabric.autocast():
        loss = training_loss(raw, x, y, cfg.label_dropout, gen, cfg.snr_cap, lens)
        fabric.backward(loss)
    optimizer.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(job["warmup"]):
        tt.train_step(fabric, model, optimizer, ema, batches, cfg, gen)
    times = []
    for _ in range(job["steps"]):
        t = time.perf_counter()
        loss = tt.train_step(fabric, model, optimizer, ema, batches, cfg, gen)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    step_s = sorted(times)[len(times) // 2]  # median
    out = {
        **job,
        "params_m": count_parameters(raw) / 1e6,
        "precision": resolve_precision(cfg) if job["precision"] == "auto" else job["precision"],
        "step_s": step_s,
        "samples_per_s": cfg.batch_size / step_s,
        "tflops": flops / step_s / 1e12,
        "gflop_per_step": flops / 1e9,
        "loss": loss,
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if cuda:
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["gpu"] = torch.cuda.get_device_name()
    return out


def run_child(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--job", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:  # one slow configuration (a long compile) ends alone
        return {**job, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {**job, "error": tail[0]}
    return json.loads(lines[-1])


def bench_loading(n: int, length: int) -> dict[str, Any]:
    """Decode ``n`` one-second float WAVs into memory with training.data.load_clips."""
    import numpy as np
    import soundfile as sf

    from pipeline.manifests import MANIFEST_COLUMNS
    from training.data import load_clips

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rng = np.random.default_rng(0)
        rows = []
        for i in range(n):
            rel = f"{CLASSES[i % 4]}/{i:06d}.wav"
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(
                base / rel,
                rng.standard_normal(length).astype("float32") * 0.1,
                44100,
                subtype="FLOAT",
            )
            rows.append(
                {
                    "path": rel,
                    "label": CLASSES[i % 4],
                    "sample_rate": "44100",
                    "num_samples": str(length),
                }
            )
        with (base / "manifest.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(rows)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        clips = load_clips(
            base / "manifest.csv",
            class_names=CLASSES,
            sample_rate=44100,
            length=length,
            channels=1,
            progress=False,
        )
        took = time.perf_counter() - t
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "clips": n,
        "seconds": took,
        "clips_per_s": n / took,
        "tensor_mib": clips.audio.numel() * 4 / 2**20,
        "rss_growth_mib": (rss1 - rss0) / 1024,
    }


def _precisions() -> tuple[str, ...]:
    """The trainer's precisions, as params.yaml's train.precision accepts them (not 'auto')."""
    from core import params as core_params

    hint = typing.get_type_hints(core_params.Train)["precision"]
    return tuple(p for p in typing.get_args(hint) if p != "auto")


def parse_variants(text: str) -> list[tuple[str, bool]]:
    """'bf16-mixed+compile,32-true' -> [('bf16-mixed', True), ('32-true', False)]."""
    variants, precisions = [], _precisions()
    for item in text.split(","):
        precision, plus, what = item.strip().partition("+")
        if precision not in precisions or (plus and what != "compile"):
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected precision[+compile], precision one of {', '.join(precisions)}"
            )
        variants.append((precision, bool(plus)))
    return variants


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--configs",
        help="preset:batch,... (default cpu: fold:8,tiny:2,tiny:8; "
        "cuda: dance-diffusion:8,fold:64)",
    )
    parser.add_argument(
        "--variants",
        type=parse_variants,
        help="comma-separated precision[+compile], precision as train.precision takes it "
        "(default cpu: 32-true; cuda: 32-true,bf16-mixed,bf16-mixed+compile)",
    )
    parser.add_argument("--length", type=int, help="samples (default cpu 44100, cuda 65536)")
    parser.add_argument("--channels", type=int, default=1, help="channels of the data (1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--load-clips", type=int, default=0, help="also time loading N clips")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_configs(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every preset:batch and precision variant, each in its own process; one line each."""
    cuda = args.device == "cuda"
    configs = args.configs or ("dance-diffusion:8,fold:64" if cuda else "fold:8,tiny:2,tiny:8")
    variants = args.variants or (
        parse_variants("32-true,bf16-mixed,bf16-mixed+compile") if cuda else [("32-true", False)]
    )
    print(
        f"{'preset':16} {'batch':>5} {'precision':11} {'compile':7} {'samples/s':>10} "
        f"{'s/step':>8} {'TFLOP/s':>8} {'peak mem':>12}"
    )
    for item in configs.split(","):
        preset, batch = item.rsplit(":", 1)
        for precision, compiled in variants:
            job = {
                "preset": preset,
                "batch": int(batch),
                "length": results["length"],
                "channels": args.channels,
                "device": args.device,
                "precision": precision,
                "compile": compiled,
                "steps": args.steps,
                "warmup": args.warmup + (2 if compiled else 0),
            }
            r = run_child(job, args.timeout)
            results["runs"].append(r)
            if "error" in r:
                print(f"{preset:16} {batch:>5} {precision:11} {compiled!s:7} error: {r['error']}")
                continue
            mem = f"{r['peak_gpu_gib']:.1f} GiB GPU" if cuda else f"{r['peak_rss_mib']:.0f} MiB RSS"
            print(
                f"{preset:16} {batch:>5} {r['precision']:11} {compiled!s:7} "
                f"{r['samples_per_s']:10.2f} {r['step_s']:8.3f} {r['tflops']:8.3f} {mem:>12}"
            )


def compare_gpu(results: dict[str, Any]) -> None:
    """Each GPU run against fp32 eager and the measured bf16 matmul peak."""
    base = next(
        (r for r in results["runs"] if r.get("precision") == "32-true" and "error" not in r),
        None,
    )
    for r in results["runs"]:
        if "error" in r:
            continue
        share = r["tflops"] / results["bf16_peak_tflops"]
        speedup = r["samples_per_s"] / base["samples_per_s"] if base else float("nan")
        print(
            f"{r['precision']:11} compile={r['compile']!s:5}: {speedup:.2f}x fp32 eager, "
            f"{100 * share:.1f} % of the measured bf16 peak"
        )


def main() -> int:
    args = parse_args()
    if args.job:
        print(json.dumps(measure(json.loads(args.job))))
        return 0
    cuda = args.device == "cuda"
    length = args.length or (65536 if cuda else 44100)
    results: dict[str, Any] = {"device": args.device, "length": length, "runs": []}
    if cuda:
        results["bf16_peak_tflops"] = matmul_peak_tflops("cuda")
        print(f"measured bf16 matmul peak: {results['bf16_peak_tflops']:.0f} TFLOP/s")
    run_configs(args, results)
    if cuda:
        compare_gpu(results)
    if args.load_clips:
        load = bench_loading(args.load_clips, 44100)
        results["loading"] = load
        print(
            f"load_clips: {load['clips']} one-second clips in {load['seconds']:.1f} s "
            f"({load['clips_per_s']:.0f} clips/s), tensor {load['tensor_mib']:.0f} MiB, "
            f"RSS +{load['rss_growth_mib']:.0f} MiB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
