"""The judge: features of a one-shot, and a small drum classifier whose hidden layer is the
embedding every distance is measured in.

A hit is heard from its attack: every clip is aligned on its onset, and its log-mel
spectrogram (48 bands) is averaged over five spans after it (0-20, 20-60, 60-150, 150-350 and
350-750 ms), so the features see the click, the body and the tail separately. A scaler and a
one-hidden-layer perceptron (scikit-learn) learn the classes from them in a second on the CPU;
the hidden layer's 32 activations are the embedding (as FAD and KAD use a classifier's
penultimate layer). Fitted on the training set's originals, scored on originals it never saw.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from training.quality import onset

N_MELS = 48
N_FFT = 1024
HOP = 256
SPANS_S = (0.0, 0.02, 0.06, 0.15, 0.35, 0.75)
FLOOR_DB = -100.0
HIDDEN = 32


@functools.cache
def _mel_basis(sr: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, fmax=sr / 2)


@functools.cache
def _window() -> np.ndarray:
    """A periodic Hann window (librosa's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def log_mel(x: np.ndarray, sr: int) -> np.ndarray:
    """Onset-aligned log-mel power in dBFS, ``[mels, frames]`` over the first 0.75 s (frames
    of N_FFT every HOP samples, not centred: the first frame starts at the onset)."""
    x = np.asarray(x, np.float32)
    n = round(SPANS_S[-1] * sr)
    seg = x[onset(x) :][:n]
    seg = np.pad(seg, (0, n - len(seg)))
    frames = np.lib.stride_tricks.sliding_window_view(seg, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=-1)) ** 2
    mel = _mel_basis(sr) @ power.T
    return np.maximum(10.0 * np.log10(np.maximum(mel, 1e-12)), FLOOR_DB)


def span_means(mel: np.ndarray, sr: int) -> np.ndarray:
    """The classifier's input from a :func:`log_mel`: its mean over each span after the
    onset."""
    edges = [round(t * sr / HOP) for t in SPANS_S]
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        hi = max(hi, lo + 1)
        parts.append(mel[:, lo:hi].mean(axis=1))
    return np.concatenate(parts).astype(np.float64)


def features(x: np.ndarray, sr: int) -> np.ndarray:
    """The classifier's input: the log-mel averaged over each span after the onset."""
    return span_means(log_mel(x, sr), sr)


@dataclass
class Judge:
    """A fitted classifier; ``classes`` in label-index order."""

    classes: list[str]
    scaler: object
    mlp: object

    @classmethod
    def fit(cls, feats: np.ndarray, labels: list[str], classes: list[str], seed: int) -> Judge:
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(feats)
        y = np.array([classes.index(label) for label in labels])
        mlp = MLPClassifier(
            hidden_layer_sizes=(HIDDEN,),
            alpha=1e-2,
            max_iter=3000,
            random_state=seed,
        ).fit(scaler.transform(feats), y)
        return cls(list(classes), scaler, mlp)

    def proba(self, feats: np.ndarray) -> np.ndarray:
        """``[n, classes]`` probabilities (columns in ``classes`` order)."""
        p = self.mlp.predict_proba(self.scaler.transform(feats))
        out = np.zeros((len(feats), len(self.classes)))
        out[:, self.mlp.classes_] = p
        return out

    def embed(self, feats: np.ndarray) -> np.ndarray:
        """The hidden layer's activations ``[n, 32]``: where distances are measured."""
        h = self.scaler.transform(feats) @ self.mlp.coefs_[0] + self.mlp.intercepts_[0]
        return np.maximum(h, 0.0)
