"""Quality checks while training: the evaluate stage's figures, small, every few steps.

Every ``train.eval_every`` steps (and at the end) rank 0 samples ``train.eval_per_class``
sounds of every class from the EMA weights (``train.eval_steps`` steps of ``sample.sampler``
with ``sample.guidance``, peak-normalized to ``sample.peak_db``) and judges them as
``training.evaluate`` does: class accuracy beside the classifier's own held-out accuracy
(the ceiling), Fréchet and kernel distance beside the distance between two real halves (the
floor), and how close the closest sound comes to a training original. The noise is the same
at every check (``evaluate.seed``), so the curves show training, not the draw.

The reference (classifier, real embeddings, near-copy banks) is prepared once, before the
first step, from the manifest the trainer reads. A check draws nothing from the training
noise streams: a run with checks ends with the weights a run without them has.

``train.early_stop`` names the figure to watch; :class:`EarlyStop` says when it has not
improved for ``train.early_stop_patience`` checks in a row. Its state is the list of checks
so far, which the resume checkpoint keeps, so a resumed run decides as the killed one would.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import ConfigError
from core.params import Params, Train
from pipeline.audio import db_to_amp, peak_to
from training.evaluation import Reference, prepare
from training.figures import judge_generated
from training.model import Denoiser
from training.reference import real_set
from training.sample_inputs import finishing
from training.sampling import Settings, generate, make_noise

ROUNDS = 10  # random real halves behind a check's floor: few sounds, so few rounds suffice
# What a check logs (as eval/<name>); missing where the figure cannot be had (too few sounds).
FIGURES = (
    "accuracy", "ceiling", "frechet", "frechet_floor", "kernel", "kernel_floor",
    "closest_ncc", "closest_mel", "near_copies", "invalid",
)  # fmt: skip
HIGHER_IS_BETTER = {"accuracy": True, "frechet": False, "kernel": False}


def check_settings(train: Train) -> None:
    """Early stopping without checks would never stop: refuse it (ConfigError, one line)."""
    if train.early_stop and not train.eval_every:
        raise ConfigError(
            f"train.early_stop {train.early_stop} needs quality checks: set train.eval_every"
        )


def due(train: Train, step: int) -> bool:
    """Whether ``step`` gets a check: every ``eval_every`` steps and the last one (0 = never)."""
    return bool(train.eval_every) and (step % train.eval_every == 0 or step == train.steps)


@dataclass
class Checker:
    """What every check reuses: the reference, the sampler settings and the fixed noise."""

    ref: Reference
    settings: Settings
    noise: torch.Tensor
    peak: float
    length: int
    seed: int


def prepare_checker(
    params: Params, dataset: Path, model: Denoiser, device: torch.device
) -> Checker:
    """The reference from the dataset's originals (as ``training.evaluate`` builds it) and
    the sampling settings of ``sample`` with ``train.eval_steps``; ConfigError when the set
    cannot be judged (a class with too few originals)."""
    ev, sample = params.evaluate, params.sample
    ref = prepare(real_set(dataset, model, params), ev.seed, ev.copy_percentile)
    precision = sample.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    settings = Settings(
        steps=params.train.eval_steps,
        rho=sample.rho,
        sampler=sample.sampler,
        guidance=sample.guidance,
        seed=ev.seed,
        batch_size=sample.batch_size,
        device=device,
        precision=precision,
        refine=sample.inversion_refine,
        progress=False,
        finish=finishing(params),
        grid_shifts=sample.grid_shifts,
        grid_below=sample.grid_below,
        length_stretch=sample.length_stretch,
        length_below=sample.length_below,
    )
    noise = make_noise(params.train.eval_per_class, (model.data_channels, model.length), ev.seed)
    return Checker(ref, settings, noise, db_to_amp(sample.peak_db), model.length, ev.seed)


def measure(checker: Checker, model: Denoiser) -> dict[str, float]:
    """One check of ``model`` (the EMA weights): the figures of :data:`FIGURES` it could get.

    The global random states are put back afterwards, so nothing else sees the check.
    """
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    try:
        generated = {
            cls: peak_to(generate(model, checker.noise, i, checker.settings).numpy(), checker.peak)
            for i, cls in enumerate(checker.ref.real.classes)
        }
        mono = {c: [x.mean(axis=0) for x in clips] for c, clips in generated.items()}
        figures = judge_generated(checker.ref, mono, checker.length, ROUNDS, checker.seed)
    finally:
        torch.random.set_rng_state(torch_state)
        np.random.set_state(np_state)
    overall, classes = figures["overall"], figures["classes"].values()
    found: dict[str, Any] = {
        **overall,
        "closest_ncc": max(c["closest_ncc"] for c in classes),
        "closest_mel": max(c["closest_mel"] for c in classes),
    }
    return {k: float(found[k]) for k in FIGURES if _number(found.get(k))}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass
class EarlyStop:
    """When to stop: ``metric`` ("" = never) has not improved for ``patience`` checks."""

    metric: str
    patience: int
    best: float | None = None
    best_step: int = 0
    since: int = 0  # checks since the best one
    stopped: bool = False

    def update(self, step: int, figures: dict[str, float]) -> bool:
        """Take one check's figures; True when the run should stop now. A check without the
        figure (too few sounds for a distance) counts neither way."""
        value = figures.get(self.metric)
        if not self.metric or value is None:
            return False
        higher = HIGHER_IS_BETTER[self.metric]
        if self.best is None or (value > self.best if higher else value < self.best):
            self.best, self.best_step, self.since = value, step, 0
        else:
            self.since += 1
        self.stopped = self.since >= self.patience
        return self.stopped

    def reason(self) -> str:
        """The summary's words for a stop ("" while running)."""
        if not self.stopped:
            return ""
        return (
            f"stopped early: eval/{self.metric} has not improved for {self.since} checks "
            f"(best {self.best:.4g} at step {self.best_step})"
        )


@dataclass
class Checks:
    """A run's checks: the checker (rank 0; None elsewhere or when off), the figures of every
    check so far (``{"step": s, **figures}``, kept in the resume checkpoint) and the stop."""

    train: Train
    on: bool  # on every rank alike
    checker: Checker | None
    early: EarlyStop
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # spent checking in this process

    @classmethod
    def resume(cls, train: Train, on: bool, checker: Checker | None, history: list[dict]) -> Checks:
        """Replay the checks a resumed checkpoint holds under the current early-stop settings
        (a stopped run stays stopped; a larger patience lets it go on)."""
        checks = cls(train, on, checker, EarlyStop(train.early_stop, train.early_stop_patience))
        for entry in history:
            checks.history.append(dict(entry))
            if not checks.early.stopped:
                checks.early.update(int(entry["step"]), entry)
        return checks

    def due(self, step: int) -> bool:
        return self.on and due(self.train, step)

    def run(self, fabric: Any, model: Denoiser, step: int, live: Any) -> bool:
        """Check ``model`` at ``step`` (rank 0 measures, every rank learns the figures), log
        them as eval/<figure>; True when early stopping says stop."""
        figures: dict[str, float] = {}
        if self.checker is not None:
            started = time.perf_counter()
            figures = measure(self.checker, model)
            self.seconds += time.perf_counter() - started
        figures = fabric.broadcast(figures, src=0)
        if live is not None:
            for name, value in figures.items():
                live.log_metric(f"eval/{name}", value)
        self.history.append({"step": step, **figures})
        return self.early.update(step, figures)


def start(
    fabric: Any, params: Params, manifest: Path, model: Denoiser, history: list[dict]
) -> tuple[Checks, str]:
    """The run's checks, with the ones a resumed checkpoint holds, and a line for the log.

    A set the checks cannot judge (too few originals, a manifest not named manifest.csv,
    which the evaluate stage reads) turns them off (said in the line), unless early stopping
    needs them (ConfigError).
    """
    train, checker, line = params.train, None, ""
    if train.eval_every and fabric.is_global_zero:
        started = time.perf_counter()
        try:
            if not model.class_names:
                raise ConfigError("an unconditional model has no classes to judge")
            if manifest.name != "manifest.csv":
                raise ConfigError(f"{manifest}: the checks read a folder's manifest.csv")
            if not manifest.is_file():  # streaming from shards elsewhere, with no local copy
                raise ConfigError(f"{manifest} not found: the checks judge against its clips")
            checker = prepare_checker(params, manifest.parent, model, fabric.device)
        except ConfigError as exc:
            if train.early_stop:
                raise ConfigError(f"train.early_stop {train.early_stop}: {exc}") from None
            line = f"quality checks off: {exc}"
        else:
            line = describe(checker, train, time.perf_counter() - started)
    on = bool(train.eval_every) and bool(fabric.broadcast(checker is not None, src=0))
    return Checks.resume(train, on, checker, history), line


def describe(checker: Checker, train: Train, seconds: float) -> str:
    """What a check is, for the log."""
    real, s = checker.ref.real, checker.settings
    stop = f"; early stop on eval/{train.early_stop}" if train.early_stop else ""
    return (
        f"quality checks every {train.eval_every} steps: {train.eval_per_class} sounds per "
        f"class, {s.steps} {s.sampler} steps, against {len(real.clips)} originals "
        f"({int(real.held.sum())} held out, classifier accuracy on them "
        f"{checker.ref.held_accuracy['overall']:.0%}){stop}; prepared in {seconds:.1f} s"
    )
