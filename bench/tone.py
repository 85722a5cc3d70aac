"""Picture and figures: the patch-rate tone in generated sounds, set beside set.

    python bench/tone.py reports/evaluation other-reports/evaluation --labels "8 shifts,one grid"
        [--classes hihat,kick] [--sounds 3] [--fold 32] [--out tone.png]

Reads the WAVs an `evaluate` run leaves in ``REPORTS/evaluation/<class>/`` (one folder per set:
another sampling, another model), draws the spectrum of the first 0.3 s from each sound's
onset (65,536-point FFT under a Hann window, dB under the sound's own peak) for the first
``--sounds`` sounds of each class, with dotted lines at every multiple of sample rate / fold
(where a patch network's grid puts its tone), and prints per set and class the median
prominence of each multiple over the bins 60-300 Hz away, the figure BENCHMARKS.md quotes (finer
than the evaluation's own stray-tone figure, training.quality.prominence, and only at the
multiples).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.quality import onset  # noqa: E402

NFFT = 65536
SECONDS = 0.3
MULTIPLES = (1, 2, 3, 4, 8)


def spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and dB under the peak of the first ``SECONDS`` from the onset."""
    x = x if x.ndim == 1 else x.mean(axis=1)
    start = onset(x)  # the first sample within 40 dB of the peak, as the evaluation's figures
    seg = x[start : start + round(SECONDS * sr)]
    db = 20 * np.log10(np.abs(np.fft.rfft(seg * np.hanning(len(seg)), NFFT)) + 1e-12)
    return np.fft.rfftfreq(NFFT, 1 / sr), db - db.max()


def prominence(freqs: np.ndarray, db: np.ndarray, at: float) -> float:
    """The strongest bin within 8 Hz of ``at`` over the median of those 60-300 Hz away."""
    near = np.abs(freqs - at) < 8
    ring = (np.abs(freqs - at) > 60) & (np.abs(freqs - at) < 300)
    return float(db[near].max() - np.median(db[ring]))


def sounds(folder: Path, cls: str, n: int | None) -> list[Path]:
    return sorted((folder / cls).glob("*.wav"))[:n]


def table(sets: dict[str, Path], classes: list[str], fold: int) -> list[str]:
    lines = []
    for label, folder in sets.items():
        for cls in classes:
            rows = []
            for path in sounds(folder, cls, None):
                x, sr = sf.read(path)
                freqs, db = spectrum(x, sr)
                rows.append([prominence(freqs, db, k * sr / fold) for k in MULTIPLES])
            if rows:
                cells = " / ".join(f"{v:.0f}" for v in np.median(rows, axis=0))
                lines.append(f"{label}: {cls} ({len(rows)} sounds) {cells} dB at {MULTIPLES}x")
    return lines


def draw(sets: dict[str, Path], classes: list[str], n: int, fold: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(classes), len(sets), figsize=(6 * len(sets), 3 * len(classes)))
    axes = np.array(axes).reshape(len(classes), len(sets))
    for row, cls in enumerate(classes):
        for col, (label, folder) in enumerate(sets.items()):
            ax, sr = axes[row, col], 44100
            for path in sounds(folder, cls, n):
                x, sr = sf.read(path)
                freqs, db = spectrum(x, sr)
                ax.plot(freqs, db, lw=0.5)
            for k in range(1, 16):
                ax.axvline(k * sr / fold, color="k", lw=0.3, ls=":")
            ax.set(xlim=(0, 16000), ylim=(-110, 0), title=f"{cls}: {label}")
            ax.set(xlabel="Hz", ylabel="dB under peak")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/tone.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", type=Path, help="REPORTS/evaluation folders")
    parser.add_argument("--labels", default="", help="comma-separated names, one per folder")
    parser.add_argument("--classes", default="hihat,kick")
    parser.add_argument("--sounds", type=int, default=3, help="sounds per class drawn")
    parser.add_argument("--fold", type=int, default=32, help="the model's patch, in samples")
    parser.add_argument("--out", type=Path, default=Path("tone.png"))
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [str(f) for f in args.folders]
    if len(labels) != len(args.folders):
        parser.error("--labels needs one name per folder")
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")
    sets, classes = dict(zip(labels, args.folders, strict=True)), args.classes.split(",")
    print("\n".join(table(sets, classes, args.fold)))
    draw(sets, classes, args.sounds, args.fold, args.out)
    print(f"bench/tone.py: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
