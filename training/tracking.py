"""What a run shows while it trains: DVCLive's curves and metrics, and demo clips.

Everything goes to ``dvclive/``: ``metrics.json`` (latest values), ``plots/metrics/train/*.tsv``
(loss, learning rate, samples/s per step), ``plots/images/demo/<step>.png`` (spectrograms)
and ``demo/<step>/<class>.wav`` (DDIM demo clips). A resumed run first rewinds these files to
its checkpoint's step, so every step appears once, as if nothing had happened.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.audio_io import write_atomic
from core.errors import ConfigError
from core.files import replacing
from core.params import Train
from core.spectrograms import log_mel_image, pyplot
from training.diffusion import ddim_sample

LIVE_DIR = Path("dvclive")
DEMO_DIR = LIVE_DIR / "demo"  # WAVs; spectrograms go through DVCLive to plots/images/demo/


def trim_history(live_dir: Path, step: int) -> None:
    """Rewind DVCLive's files to ``step``, the checkpoint a killed run resumes from.

    The killed run may have logged steps after its checkpoint (the resumed run logs them
    again: no step may appear twice), left a half-written last row, or been killed while
    DVCLive rewrote metrics.json (which it does in place). So the curves keep their complete
    rows up to ``step``, and metrics.json is rebuilt from their last rows.
    """
    metrics_dir = live_dir / "plots" / "metrics"
    summary: dict[str, Any] = {}
    for tsv in sorted(metrics_dir.rglob("*.tsv")):
        last = _trim_curve(tsv, step)
        if last is not None:
            *parents, name = tsv.relative_to(metrics_dir).with_suffix("").parts
            node = summary
            for part in parents:
                node = node.setdefault(part, {})
            node[name] = last
    with replacing(live_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps({**summary, "step": step}, indent=4) + "\n", encoding="utf-8")
    for folder in (live_dir / "plots" / "images" / "demo", live_dir / "demo"):
        if folder.is_dir():
            for item in folder.iterdir():
                if item.stem.isdigit() and int(item.stem) > step:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()


def _trim_curve(tsv: Path, step: int) -> float | None:
    """Keep a curve's complete rows up to ``step``; its last value (None: no rows, or not a
    curve of steps)."""
    with tsv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    if not rows or "step" not in rows[0]:
        return None
    header, col = rows[0], rows[0].index("step")
    kept = [header] + [
        r for r in rows[1:] if len(r) == len(header) and r[col].isdigit() and int(r[col]) <= step
    ]
    with replacing(tsv) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter="\t", lineterminator=os.linesep).writerows(kept)
    return float(kept[-1][header.index(tsv.stem)]) if len(kept) > 1 else None


def open_live(resume_step: int | None) -> Any:
    """DVCLive writing into dvclive/; dvc.yaml declares its outputs, so it must not write one."""
    from dvclive import Live

    if resume_step is None:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)  # Live(resume=False) clears the rest
    else:
        trim_history(LIVE_DIR, resume_step)
    from scmrepo.exceptions import SCMError

    try:
        return Live(
            str(LIVE_DIR), dvcyaml=False, resume=resume_step is not None, save_dvc_exp=False
        )
    except SCMError as exc:  # DVCLive asks git for HEAD, which a repo has after a commit
        raise ConfigError(
            f"DVCLive needs a git commit to log against ({exc}): commit once"
        ) from None


def demo_figure(clips: np.ndarray, sr: int, names: list[str], step: int) -> Any:
    """Log-mel spectrograms of the demo clips, one panel per class."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.4), squeeze=False)
    for ax, clip, name in zip(axes[0], clips, names, strict=True):
        log_mel_image(ax, clip.mean(axis=0), sr)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"demo clips at step {step} (EMA weights, log-mel)", fontsize=10)
    fig.tight_layout()
    return fig


def write_demos(live: Any, fabric: Any, ema_model: Any, train: Train, step: int) -> None:
    """One DDIM clip per class from the EMA weights, from the same noise at every demo step,
    so the clips show how training moves: WAVs plus one spectrogram image."""
    names = ema_model.class_names or ["unconditional"]
    gen = torch.Generator().manual_seed(train.seed)
    noise = torch.randn(len(names), ema_model.data_channels, ema_model.length, generator=gen)
    labels = torch.arange(len(names)) if ema_model.class_names else None
    with fabric.autocast():
        clips = ddim_sample(
            ema_model,
            noise.to(fabric.device),
            train.demo_steps,
            labels=None if labels is None else labels.to(fabric.device),
        )
    clips = clips.float().clamp(-1, 1).cpu().numpy()
    sr = ema_model.sample_rate
    for clip, name in zip(clips, names, strict=True):
        write_atomic(DEMO_DIR / f"{step:06d}" / f"{name}.wav", clip, sr, "PCM_16")
    live.log_image(f"demo/{step:06d}.png", demo_figure(clips, sr, names, step))
