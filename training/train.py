"""Train the class-conditional denoiser on data/augmented/: ``python -m training.train``.

The clips are held in memory (``train.data: folder``) or streamed from the WebDataset shards
of ``train.shards``, a folder or a URL (``train.data: shards``; see ``training.stream``).

The DVC ``train`` stage runs this. Every knob is in params.yaml: ``train`` (steps, batch,
learning rate, devices...), ``model`` (the architecture preset), ``audio`` (the clip format)
and ``label.classes`` (the class list). It fine-tunes ``train.init_checkpoint`` (an original
Dance Diffusion ``.ckpt`` or one of this project's checkpoints) or starts from scratch.

Writes
  models/checkpoints/last.pt  every ``train.checkpoint_every`` steps and at the end: everything
                              a resumed run needs (weights, EMA, optimizer, step, RNG states)
  models/model.pt             at the end: the weights and their EMA (sampling uses the EMA)
  models/MODEL_CARD.md        at the end: the model card (``training.evaluate`` completes it)
  dvclive/                    metrics.json (latest values), plots/metrics/train/*.tsv (loss,
                              learning rate, samples/s per step), plots/metrics/eval/*.tsv
                              (quality checks every ``train.eval_every`` steps: class accuracy,
                              distances to real drums and their floors, closest copy),
                              plots/images/demo/<step>.png (spectrograms) and
                              demo/<step>/<class>.wav (DDIM demo clips)

A run that was killed resumes from last.pt at its step with the same optimizer, EMA and random
state, so it ends with the weights an uninterrupted run would have had. Resuming needs the same
data, code and settings except the ones that only say how long and how often (steps,
checkpoint_every, demo_*, eval_*, early_stop*; more steps stretch the learning-rate curve);
otherwise training starts afresh and says why.
With ``train.early_stop`` the run ends early, as if at its last step, once that check has not
improved for ``train.early_stop_patience`` checks in a row.

Lightning Fabric does devices, DDP, precision, gradient-sync and rank-0 work; the loop is PyTorch.

This module is the loop and its command line, top to bottom: the set-up, one step, the loop,
``main``. What it uses: ``training.config`` (the typed settings, precision, Fabric, the model
of ``model.preset``), ``training.resume`` (run identity, which checkpoint to go on from, what
a checkpoint holds), ``training.tracking`` (DVCLive and the demo clips), ``training.checks``
(the quality checks and early stopping), ``training.data``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core import params as core_params
from core.cli import show_progress
from core.errors import ConfigError
from core.params import Params, Train
from training import card, checks, config
from training.checkpoints import save_checkpoint
from training.config import build_model, make_fabric, open_data, resolve_precision
from training.data import MANIFEST, Batches, DataError, batch_lengths
from training.diffusion import make_ema, training_loss
from training.lengths import Measure
from training.model import Denoiser
from training.resume import (
    LAST_PATH,
    MODEL_PATH,
    checkpoint_state,
    find_resume,
    init_from_checkpoint,
    restore,
    resume_state,
    run_identity,
    set_aside,
)
from training.stream import read_bytes
from training.tracking import open_live, write_demos

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # clips, labels, lengths


class TrainingStopped(RuntimeError):
    """Training cannot go on (a NaN loss); the message says what is kept."""


@dataclass
class Run:
    """One process's share of a run: what the loop reads and moves."""

    fabric: Any
    train: Train
    raw: Denoiser  # the model itself (checkpoints, EMA)
    model: Any  # ... as Fabric wraps it (DDP, precision): what the loop calls
    optimizer: Any
    scheduler: Any
    ema: Any
    gen: torch.Generator  # this rank's noise stream
    data: Batches  # this rank's clips: in memory, or streamed from shards
    identity: dict[str, Any]
    precision: str
    why: str  # resumed, or why not
    checks: checks.Checks
    step: int = 0
    last_saved: int = 0
    measure: Measure | None = None  # the clips' lengths, for a model conditioned on them


# ----------------------------------------------------------------------------- set-up


def setup(fabric: Any, params: Params, args: argparse.Namespace) -> Run:
    """The model (fresh, pretrained or resumed), its data, optimizer, EMA and noise stream."""
    cfg, rank, world = params.train, fabric.global_rank, fabric.world_size
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(params, params.label.classes)
    progress = fabric.is_global_zero and show_progress(not args.no_progress)
    data = open_data(params, model, Path(args.manifest), rank, world, progress)
    precision = resolve_precision(cfg)
    measure = config.length_measure(params, model)
    if measure is not None:
        config.count_lengths(model, data, measure)
    identity = run_identity(cfg, model, data, world, precision)
    ckpt, why = find_resume(identity, cfg.steps, args.fresh)
    fabric.barrier()  # every rank has read the checkpoint before rank 0 moves it
    if ckpt is None and LAST_PATH.is_file() and fabric.is_global_zero:
        why += f"; the old checkpoint is kept as {set_aside(LAST_PATH)}"
    if cfg.init_checkpoint and ckpt is None:
        fabric.print(f"train: {init_from_checkpoint(model, cfg.init_checkpoint)}")

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor(cfg))
    wrapped, optimizer = fabric.setup(torch.compile(model) if cfg.compile else model, optimizer)
    ema = make_ema(model, cfg.ema_decay)
    gen = torch.Generator(device=fabric.device).manual_seed(cfg.seed * 1000 + rank)
    step, history = 0, []
    if ckpt is not None:
        step = restore(ckpt, model, ema, optimizer, scheduler, gen, rank)
        history = ckpt.get("checks") or []
        del ckpt
    run_checks, line = checks.start(fabric, params, Path(args.manifest), model, history)
    if line:
        fabric.print(f"train: {line}")
    return Run(
        fabric, cfg, model, wrapped, optimizer, scheduler, ema, gen, data, identity,
        precision, why, run_checks, step, last_saved=step, measure=measure,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the loop


def train_step(
    fabric: Any,
    model: Any,
    optimizer: Any,
    ema: Any,
    batches: list[Batch],
    cfg: Train,
    gen: torch.Generator,
) -> float:
    """One optimizer step over the micro-batches (gradients sync across ranks on the last one).

    Returns the loss averaged over micro-batches and ranks. A non-finite loss leaves the
    weights, the optimizer and the EMA untouched: the caller decides what to do.
    """
    losses = []
    for i, (x, y, lens) in enumerate(batches):
        with fabric.no_backward_sync(model, enabled=i < len(batches) - 1):
            loss = training_loss(
                model, x, y, cfg.label_dropout, gen, cfg.snr_cap, lens, cfg.low_noise_share
            )
            fabric.backward(loss / len(batches))
        losses.append(loss.detach())
    loss_value = float(fabric.all_reduce(torch.stack(losses).mean(), reduce_op="mean"))
    if math.isfinite(loss_value):
        if cfg.grad_clip > 0:
            fabric.clip_gradients(model, optimizer, max_norm=cfg.grad_clip)
        optimizer.step()
        ema.update_parameters(model.module)
    optimizer.zero_grad(set_to_none=True)
    return loss_value


def next_batches(run: Run) -> list[Batch]:
    """The step's micro-batches, on the device (the set stays in host memory)."""
    to_device, accum, out = run.fabric.to_device, run.train.grad_accum, []
    for micro in range(accum):
        x, y = run.data.batch(k := run.step * accum + micro)
        lens = None if run.measure is None else batch_lengths(run.data, k, x, run.measure)
        out.append((to_device(x), to_device(y), None if lens is None else to_device(lens)))
    return out


def save_last(run: Run) -> None:
    """Write last.pt at the run's step (every rank hands rank 0 its noise stream)."""
    states = run.fabric.all_gather(run.gen.get_state())
    states = states if run.fabric.world_size > 1 else states[None]
    if run.fabric.is_global_zero:
        state = resume_state(
            run.raw, run.ema, run.identity, run.step, run.optimizer, run.scheduler, list(states),
            run.checks.history,
        )  # fmt: skip
        save_checkpoint(LAST_PATH, **state)
    run.last_saved = run.step


def after_step(run: Run, live: Any, loss: float, lr: float, rate: float) -> bool:
    """Log the step; quality check, checkpoint and demo clips when it is time (``live``: rank
    0 only). True when early stopping ends the run at this step."""
    cfg, step = run.train, run.step
    if live is not None:
        live.step = step
        live.log_metric("train/loss", loss)
        live.log_metric("train/lr", lr)
        live.log_metric("train/samples_per_s", rate)
    # Before the checkpoint, which keeps every check up to its step for a resumed run.
    stop = run.checks.due(step) and run.checks.run(run.fabric, run.ema.module, step, live)
    last = step == cfg.steps or stop
    checkpoint = step % cfg.checkpoint_every == 0 or last
    if checkpoint:
        save_last(run)
    if live is not None:
        if (cfg.demo_every and step % cfg.demo_every == 0) or last:
            write_demos(live, run.fabric, run.ema.module, cfg, step)
        # next_step() re-reads every curve (for DVC Studio), which grows with the run:
        # once per checkpoint; metrics.json alone after the other steps.
        if checkpoint:
            live.next_step()
        else:
            live.make_summary()
    return stop


def progress_bar(run: Run, args: argparse.Namespace) -> Any:
    """Steps done of ``train.steps`` (a resumed run starts at its step); rank 0 only."""
    from tqdm import tqdm

    return tqdm(
        total=run.train.steps,
        initial=run.step,
        desc="train",
        unit="step",
        disable=not show_progress(not args.no_progress),
    )


def train(fabric: Any, params: Params, args: argparse.Namespace) -> int:
    """Set up (or resume), step until ``train.steps``, write models/model.pt."""
    cfg, world, main = params.train, fabric.world_size, fabric.is_global_zero
    run = setup(fabric, params, args)
    per_step = cfg.batch_size * cfg.grad_accum * world
    n_params = sum(p.numel() for p in run.raw.parameters())
    counts = ", ".join(f"{k} {v}" for k, v in run.data.class_counts().items())
    rank0 = " on rank 0" if world > 1 and cfg.data == "folder" else ""
    fabric.print(
        f"train: {run.data.total} clips ({counts}{rank0}){streamed(cfg)}, "
        f"{run.raw.config.name} model "
        f"({n_params / 1e6:.2f} M parameters), {world} process(es) on {fabric.device.type}, "
        f"{run.precision}, {per_step} clips per step; {run.why}"
    )
    live = open_live(run.step if run.step > 0 else None) if main else None
    bar = progress_bar(run, args) if main else None
    t_start, start_step, loss = time.perf_counter(), run.step, float("nan")
    run.model.train()
    while run.step < cfg.steps and not run.checks.early.stopped:
        t0 = time.perf_counter()
        batches = next_batches(run)
        lr = run.optimizer.param_groups[0]["lr"]
        loss = train_step(fabric, run.model, run.optimizer, run.ema, batches, cfg, run.gen)
        if not math.isfinite(loss):
            raise TrainingStopped(
                f"loss is {loss} at step {run.step + 1}: stopped. The last good checkpoint "
                f"is {LAST_PATH} (step {run.last_saved}); try a lower train.lr"
            )
        run.scheduler.step()
        run.step += 1
        rate = per_step / (time.perf_counter() - t0)
        after_step(run, live, loss, lr, rate)
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.1f}", refresh=False)
            bar.update(1)

    if bar is not None:
        bar.close()
    run.data.close()
    if main:
        save_final(run, params, Path(args.manifest))
        live.end()
    fabric.barrier()
    fabric.print(f"train: {summary(run, start_step, time.perf_counter() - t_start, loss)}")
    return 0


def streamed(cfg: Train) -> str:
    """Where the clips come from, when they are streamed (for the first line)."""
    return f" streamed from {cfg.shards}" if cfg.data == "shards" else ""


def save_final(run: Run, params: Params, manifest: Path) -> None:
    """models/model.pt (with the checks and why it stopped) and the model card beside it
    (which describes the set from its manifest, or from the shards' one)."""
    state = checkpoint_state(run.raw, run.ema, run.identity, run.step)
    state.update(checks=run.checks.history, stopped=run.checks.early.reason())
    save_checkpoint(MODEL_PATH, **state)
    if run.train.data == "folder":
        card.write(MODEL_PATH, params, manifest, None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "manifest.csv"
        rows.write_bytes(read_bytes(f"{run.train.shards.rstrip('/')}/manifest.csv"))
        card.write(MODEL_PATH, params, rows, None, source=run.train.shards)


def summary(run: Run, start_step: int, took: float, loss: float) -> str:
    """The last line: what was done, how fast, whether it stopped early, what was written."""
    done, per_step = run.step - start_step, run.train.batch_size * run.train.grad_accum
    per_step *= run.fabric.world_size
    parts = [
        f"{done} steps ({start_step} -> {run.step}) in {took:.1f} s, "
        f"{done * per_step / max(took, 1e-9):.1f} clips/s, last loss {loss:.4f}"
        if done
        else f"no steps left (the checkpoint is at step {run.step})"
    ]
    n_checks = sum(1 for c in run.checks.history if c["step"] > start_step)
    if n_checks and run.checks.checker is not None:
        parts.append(f"{n_checks} quality checks in {run.checks.seconds:.1f} s")
    if run.checks.early.stopped:
        parts.append(run.checks.early.reason())
    wrote = f"wrote {MODEL_PATH}" + (f" and {LAST_PATH}" if done else "")
    return "; ".join([*parts, wrote])


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags; every setting is in params.yaml (--help shows the module's first part)."""
    doc = (__doc__ or "").split("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="\n\n".join(doc[:4]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from params.yaml (train, model, audio, label.classes); "
        "run the whole pipeline with `dvc repro`.",
    )
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument(
        "--manifest", default=str(MANIFEST), help=f"training set manifest ({MANIFEST})"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore models/checkpoints/last.pt and start over"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The command: 0 when trained, 2 on bad settings or data (one line), 1 on a failure,
    130 when interrupted (the same command resumes)."""
    args = parse_args(argv)
    try:
        params = core_params.load(args.params)
        config.check(params.train)
        checks.check_settings(params.train)
    except ConfigError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    fabric = make_fabric(params.train)
    fabric.launch()  # with devices > 1, starts the other ranks (this command again)
    code = 1  # also when an unexpected error propagates
    try:
        code = train(fabric, params, args)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        code = 2
    except TrainingStopped as exc:
        print(f"train: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"train: interrupted; the same command resumes from {LAST_PATH}", file=sys.stderr)
        code = 130
    finally:
        if code:
            stop_other_ranks(fabric)
    return code


def stop_other_ranks(fabric: Any) -> None:
    """End the ranks this process started: after a failure here (a rank-0 task such as
    logging failed) they would wait in their next collective until it times out."""
    launcher = fabric.strategy.launcher
    for proc in getattr(launcher, "procs", None) or []:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
