"""Log-mel spectrograms: the one look of every spectrogram the project computes or draws
(dataset report, training demos, sample previews, the listening page), so they compare at a
glance. Matplotlib and librosa are imported on use: stages that draw nothing never load them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.files import replacing


def log_mel(y: np.ndarray, sr: int) -> np.ndarray:
    """Mel power spectrogram of one mono clip with the project's settings (64 mels, FFT of
    2048 or less for short clips, hop a quarter of it)."""
    import librosa

    n_fft = min(2048, 2 ** int(np.log2(max(len(y), 2))))
    return librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64, fmax=sr / 2
    )


def log_mel_image(ax: Any, y: np.ndarray, sr: int) -> None:
    """Draw one mono clip's log-mel spectrogram on a matplotlib axis (80 dB range, magma)."""
    import librosa

    ax.imshow(
        librosa.power_to_db(log_mel(y, sr), ref=np.max),
        origin="lower",
        aspect="auto",
        vmin=-80,
        vmax=0,
        cmap="magma",
    )


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display anywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, out: Path, dpi: int = 80) -> None:
    """Write a figure atomically as PNG and free it."""
    with replacing(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)


def spectrogram_grid(rows: Mapping[str, Sequence[Path]], out: Path, title: str) -> None:
    """A grid of log-mel spectrograms of audio files: one row per key (a class), its files
    left to right."""
    import soundfile as sf

    plt = pyplot()
    rows = {name: list(paths) for name, paths in rows.items() if paths}
    if not rows:
        return
    cols = max(len(paths) for paths in rows.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 2.0 * len(rows)), squeeze=False)
    for r, (name, paths) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(paths):
                ax.axis("off")
                continue
            y, sr = sf.read(paths[c], dtype="float32", always_2d=True)
            log_mel_image(ax, y.mean(axis=1), sr)
            ax.set_title(f"{name} {c + 1}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name)
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, out)
