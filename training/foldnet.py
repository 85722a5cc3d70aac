"""A U-Net built for the CPU: the waveform folded into channels before any convolution.

Dance Diffusion's U-Net runs a dozen convolutions at the full sample rate on 8-128 channels;
on a CPU that is per-sample overhead, not arithmetic. Here the clip is first cut into
``fold``-sample patches that become channels (``[B, C, N] -> [B, C * fold, N / fold]``, as
audio-diffusion-pytorch's UNetV0 patches), so the shallowest level already runs at
44,100 / 32 = 1,378 positions. Each deeper level downsamples by ``factor`` with a strided
convolution; residual blocks get the noise level and class through FiLM (a scale and shift
per channel, zero at init), a few sine/cosine position channels tell the network where in the
clip it is (a hit's attack is always near the start), and one self-attention runs at the
deepest level only, where it is cheap.

:class:`FoldConfig` is the architecture (a ``model.presets`` entry with ``arch: fold``);
``training.model.Denoiser`` builds and wraps it. The net predicts the clean clip (``predict:
x0``; :func:`as_v` turns that into the v every sampler integrates) or v itself, and its preset
names the noise schedule it was trained with (``cosine``: noise levels drawn uniformly, so the
high-noise steps that decide a sound's class and envelope get their share). With ``gate`` a
third head's sigmoid multiplies the prediction sample by sample: a linear head's silence keeps a
residue (about -50 dB, which the sampler commits to as a floor that hats and claps ended on),
a gain near zero does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from training import lengths as hit_lengths
from training import patches
from training.patches import dct_matrix, fold, mdct_matrix, unfold

ARCH = "fold"
SCHEDULES = ("cosine", "crash")
TARGETS = ("x0", "x0-masked", "v")
MASKS = ("dct", "mdct")  # x0-masked: the transform whose bins get the gains
GROUPS = 8  # GroupNorm groups: every channel count must be a multiple
_INT_KEYS = ("io_channels", "fold", "blocks", "factor", "heads", "pos", "class_dim")
_FLAGS = ("lengths", "length_map", "gate")  # a checkpoint stores those that are on
MAP_CHANNELS = 2  # length_map: "said" and the time since the start over the asked length
LENGTH_KEY = "length_counts"  # the buffer of each class's hit lengths seen in training
CLASS_KEYS = ("labels.", LENGTH_KEY)  # the U-Net's entries shaped by the classes


@dataclass(frozen=True)
class FoldConfig:
    """The folded U-Net's hyper-parameters; built with :meth:`from_preset`, which checks
    every key (a checkpoint's layout depends on each)."""

    io_channels: int
    fold: int
    channels: tuple[int, ...]
    blocks: int
    factor: int
    heads: int
    pos: int
    class_dim: int
    schedule: str = "cosine"
    predict: str = "x0"
    mask_from: int = 0
    mask: str = "dct"  # "mdct": lapped frames of 2 * fold (no block edges); "dct": per patch
    lengths: bool = False  # conditioned on the hit's length too (training.lengths)
    length_map: bool = False  # ...also as input channels: where in the clip the asked length ends
    gate: bool = False  # the output times a gain in (0, 1) per sample: silence can be exact
    dropout: float = 0.0  # share of each residual block's inner activations zeroed in training
    name: str = "custom"

    @classmethod
    def from_preset(cls, preset: Mapping[str, Any]) -> FoldConfig:
        known = (
            "arch", "name", "channels", "schedule", "predict", "mask_from", "mask", "dropout",
            *_FLAGS,
            *_INT_KEYS,
        )  # fmt: skip
        unknown = [str(k) for k in preset if k not in known]
        if unknown:
            raise ConfigError(
                f"model preset has unknown key(s) {', '.join(unknown)}; a fold preset has "
                f"{', '.join(known)}"
            )
        missing = [k for k in ("channels", *_INT_KEYS) if k not in preset]
        if missing:
            raise ConfigError(f"model preset lacks {', '.join(missing)}")
        ints = {k: _whole(k, preset[k]) for k in _INT_KEYS}
        channels = preset["channels"]
        if not isinstance(channels, list | tuple) or not channels:
            raise ConfigError(f"model channels must be a list of whole numbers, got {channels!r}")
        for flag in _FLAGS:
            if not isinstance(preset.get(flag, False), bool):
                raise ConfigError(f"model {flag} must be true or false, got {preset[flag]!r}")
        config = cls(
            channels=tuple(_whole("channels", c) for c in channels),
            **{flag: bool(preset.get(flag, False)) for flag in _FLAGS},
            schedule=str(preset.get("schedule", "cosine")),
            predict=str(preset.get("predict", "x0")),
            mask_from=_whole("mask_from", preset.get("mask_from", 0)),
            mask=str(preset.get("mask", "dct")),
            dropout=_share("dropout", preset.get("dropout", 0.0)),
            name=str(preset.get("name", "custom")),
            **ints,
        )
        config.check()
        return config

    def check(self) -> None:
        if min(self.io_channels, self.fold, self.blocks, self.heads, self.class_dim) < 1:
            raise ConfigError("model io_channels, fold, blocks, heads, class_dim must be positive")
        if self.factor < 2:
            raise ConfigError(f"model factor must be at least 2, got {self.factor}")
        if self.pos < 0 or self.pos % 2:
            raise ConfigError(f"model pos must be an even number >= 0, got {self.pos}")
        bad = [c for c in self.channels if c < 1 or c % GROUPS]
        if bad:
            raise ConfigError(f"model channels must be positive multiples of {GROUPS}: {bad}")
        if self.channels[-1] % self.heads:
            raise ConfigError(
                f"model heads ({self.heads}) must divide the deepest channels ({self.channels[-1]})"
            )
        if self.predict not in TARGETS:
            raise ConfigError(
                f"model predict must be one of {', '.join(TARGETS)}, got {self.predict!r}"
            )
        if not 0 <= self.mask_from < self.fold:
            raise ConfigError(
                f"model mask_from must be a frequency bin in [0, {self.fold - 1}], "
                f"got {self.mask_from}"
            )
        if self.mask not in MASKS:
            raise ConfigError(f"model mask must be one of {', '.join(MASKS)}, got {self.mask!r}")
        if self.length_map and not self.lengths:
            raise ConfigError("model length_map needs lengths: true (it maps the asked length)")
        if self.gate and self.predict == "v":
            raise ConfigError(
                "model gate needs predict x0 or x0-masked: v is not silent in silence"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"model schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )

    def as_preset(self) -> dict[str, Any]:
        """The preset as a plain dict: what a checkpoint stores (and loads back)."""
        keys = {k: getattr(self, k) for k in _INT_KEYS}
        return {
            "name": self.name,
            "arch": ARCH,
            "channels": list(self.channels),
            "schedule": self.schedule,
            "predict": self.predict,
            "mask_from": self.mask_from,
            "mask": self.mask,
            **{flag: True for flag in _FLAGS if getattr(self, flag)},
            **({"dropout": self.dropout} if self.dropout else {}),
            **keys,
        }

    def arch(self) -> dict[str, Any]:
        """What fixes the weights' shapes and meaning: every key but the name and the dropout
        (a training regulariser), so a checkpoint fine-tunes under another dropout."""
        return {k: v for k, v in self.as_preset().items() if k not in ("name", "dropout")}

    def block(self) -> int:
        """Clips are padded to a multiple of this many samples (and cropped back)."""
        return self.fold * self.factor ** (len(self.channels) - 1)

    def describe(self) -> str:
        return (
            f"a U-Net on the waveform folded {self.fold} samples per step into channels "
            f"({'/'.join(map(str, self.channels))} channels)"
        )


def _whole(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ConfigError(f"model {key} must be a whole number, got {value!r}")
    return int(value)


def _share(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"model {key} must be a number in [0, 1), got {value!r}")
    return float(value)


MIN_SIGMA = 1e-3  # v from an x0 prediction divides by sigma: t = 0 exactly would be 1 / 0


def as_v(out: Tensor, x: Tensor, t: Tensor, predict: str) -> Tensor:
    """The network's output as the v the rest of the code integrates. ``x0``: the clean clip
    predicted directly, so silence is predicted as silence (a v-predicting network must copy
    the noise exactly there, and what it misses stays as a noise floor); then
    ``v = (alpha x_t - x0) / sigma``."""
    if predict == "v":
        return out
    angle = t.float().view(-1, 1, 1) * (math.pi / 2)
    alpha, sigma = angle.cos(), angle.sin().clamp(min=MIN_SIGMA)
    return ((alpha * x.float() - out.float()) / sigma).to(out.dtype)


class Film(nn.Module):
    """Scale and shift per channel from the conditioning vector; identity at init."""

    def __init__(self, emb: int, c: int):
        super().__init__()
        self.proj = nn.Linear(emb, 2 * c)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        scale, shift = self.proj(e)[..., None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float = 0.0, k: int = 3):
        super().__init__()
        # Off: no module at all, so a run without dropout draws the same random numbers as before.
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.n1 = nn.GroupNorm(GROUPS, c_in)
        self.c1 = nn.Conv1d(c_in, c_out, k, padding=k // 2)
        self.film = Film(emb, c_out)
        self.n2 = nn.GroupNorm(GROUPS, c_out)
        self.c2 = nn.Conv1d(c_out, c_out, k, padding=k // 2)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(self.drop(F.silu(self.film(self.n2(h), e))))
        return h + self.skip(x)


class Attention(nn.Module):
    def __init__(self, c: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(GROUPS, c)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.out = nn.Conv1d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, n = x.shape
        qkv = self.qkv(self.norm(x)).view(b, 3, self.heads, c // self.heads, n).transpose(3, 4)
        y = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])
        return x + self.out(y.transpose(2, 3).reshape(b, c, n))


class FoldUNet(nn.Module):
    """x [B, io, N] at noise level t [B] with class labels [B] (and, with ``lengths``, the
    hits' lengths [B] in seconds, NaN = not said) -> x0 or v [B, io, N] (the preset's
    ``predict``).

    ``num_labels``: embeddings for the classes plus the null class (1 when unconditional).
    ``sample_rate``: of the clips, so that ``length_map`` can place the asked length in them.
    ``length_counts`` [classes, bins]: the lengths training saw per class, which sampling
    draws from (a buffer, so it travels in the checkpoint with the weights).
    """

    def __init__(self, config: FoldConfig, num_labels: int, sample_rate: int):
        super().__init__()
        cfg, ch, emb = config, config.channels, config.class_dim
        self.config = cfg
        self.step_s = cfg.fold / sample_rate  # seconds per folded position
        self.t_freq = nn.Parameter(torch.randn(emb // 2) * 16.0, requires_grad=False)
        self.t_mlp = nn.Sequential(nn.Linear(2 * (emb // 2), emb), nn.SiLU(), nn.Linear(emb, emb))
        self.labels = nn.Embedding(num_labels, emb)
        if cfg.lengths:
            f = 2 * hit_lengths.FREQS
            self.len_mlp = nn.Sequential(nn.Linear(f, emb), nn.SiLU(), nn.Linear(emb, emb))
            self.len_null = nn.Parameter(torch.zeros(emb))
            self.register_buffer("length_counts", torch.zeros(num_labels - 1, hit_lengths.BINS))
        extra = cfg.pos + (MAP_CHANNELS if cfg.length_map else 0)
        self.inp = nn.Conv1d(cfg.io_channels * cfg.fold + extra, ch[0], 3, padding=1)
        self.enc, self.down = nn.ModuleList(), nn.ModuleList()
        for i, c in enumerate(ch):
            self.enc.append(
                nn.ModuleList(ResBlock(c, c, emb, cfg.dropout) for _ in range(cfg.blocks))
            )
            last = i + 1 == len(ch)
            self.down.append(
                nn.Identity() if last else nn.Conv1d(c, ch[i + 1], cfg.factor, stride=cfg.factor)
            )
        self.mid = nn.ModuleList(ResBlock(ch[-1], ch[-1], emb, cfg.dropout) for _ in range(2))
        self.attn = Attention(ch[-1], cfg.heads)
        self.dec, self.up = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(ch))):
            c = ch[i]
            self.dec.append(
                nn.ModuleList(
                    ResBlock(2 * c if j == 0 else c, c, emb, cfg.dropout) for j in range(cfg.blocks)
                )
            )
            self.up.append(
                nn.ConvTranspose1d(c, ch[i - 1], cfg.factor, stride=cfg.factor)
                if i > 0
                else nn.Identity()
            )
        self.out_norm = nn.GroupNorm(GROUPS, ch[0])
        heads = (2 if cfg.predict == "x0-masked" else 1) + int(cfg.gate)  # residual, mask, gate
        self.out = nn.Conv1d(ch[0], heads * cfg.io_channels * cfg.fold, 3, padding=1)
        self.register_buffer("dct", dct_matrix(cfg.fold), persistent=False)
        self.register_buffer("lapped", mdct_matrix(cfg.fold), persistent=False)
        # The mask's frequencies, per channel: bins from mask_from up (bin k ~ k * rate / (2 fold)).
        bins = (torch.arange(cfg.fold) >= cfg.mask_from).float().repeat(cfg.io_channels)[:, None]
        self.register_buffer("bins", bins, persistent=False)
        nn.init.zeros_(self.out.weight)  # starts predicting 0 (silence, or v = 0)
        nn.init.zeros_(self.out.bias)

    def _embed(self, t: Tensor, labels: Tensor, lengths: Tensor | None) -> Tensor:
        f = t.float()[:, None] * self.t_freq[None] * (2 * math.pi)
        e = self.t_mlp(torch.cat([f.cos(), f.sin()], dim=1)) + self.labels(labels)
        if not self.config.lengths:
            if lengths is not None:
                raise ValueError("this model is not conditioned on length (preset lengths)")
            return e
        null = self.len_null[None].expand_as(e)
        if lengths is None:
            return e + null
        said = ~lengths.isnan()
        feats = hit_lengths.features(lengths.nan_to_num(1.0))
        return e + torch.where(said[:, None], self.len_mlp(feats.to(e.dtype)), null)

    def _positions(self, n: int, like: Tensor) -> Tensor:
        x = torch.linspace(0, 1, n, device=like.device)
        k = torch.arange(self.config.pos // 2, device=like.device)
        angle = math.pi * x[None, :] * (2.0 ** k[:, None])
        return torch.cat([angle.sin(), angle.cos()]).to(like.dtype)

    def _length_map(self, lengths: Tensor | None, n: int, like: Tensor) -> Tensor:
        """[B, 2, n]: 1 where a length is said (else 0), and each position's time over the
        asked length, up to 2 (0 when not said). The embedding says the length to every
        block at once; a decay that must end at a place in the clip is easier to draw from
        a map that marks the place (the embedding alone left hats asked 0.3 s ringing 0.5 s)."""
        b = like.shape[0]
        if lengths is None:
            return like.new_zeros(b, MAP_CHANNELS, n)
        said = ~lengths.isnan()
        secs = lengths.nan_to_num(1.0).clamp_min(1e-3)  # 1: any value, masked off below
        tau = (torch.arange(n, device=like.device) + 0.5) * self.step_s
        on = said.to(like.dtype)[:, None]
        ratio = (tau[None] / secs[:, None]).clamp(max=2.0).to(like.dtype) * on
        return torch.stack([on.expand(-1, n), ratio], 1)

    def forward(
        self, x: Tensor, t: Tensor, labels: Tensor, lengths: Tensor | None = None
    ) -> Tensor:
        cfg = self.config
        b, io, n = x.shape
        m = -(-n // cfg.block()) * cfg.block()
        steps = m // cfg.fold
        folded = fold(F.pad(x, (0, m - n)), cfg.fold)
        inputs = [folded, self._positions(steps, x)[None].expand(b, -1, -1)]
        if cfg.length_map:
            inputs.append(self._length_map(lengths, steps, x))
        h = self.inp(torch.cat(inputs, 1))
        e = self._embed(t, labels, lengths).to(h.dtype)
        skips = []
        for blocks, down in zip(self.enc, self.down, strict=True):
            for block in blocks:
                h = block(h, e)
            skips.append(h)
            h = down(h)
        h = self.mid[1](self.attn(self.mid[0](h, e)), e)
        for blocks, up in zip(self.dec, self.up, strict=True):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, e)
            h = up(h)
        h = self.out(F.silu(self.out_norm(h)))
        k = io * cfg.fold
        if cfg.gate:
            h, gain = h[:, :-k], torch.sigmoid(h[:, -k:])
        if cfg.predict == "x0-masked":
            h = h[:, :k] + self._masked(folded, h[:, k:])
        if cfg.gate:
            h = h * gain
        return unfold(h, io)[..., :n]

    def _masked(self, folded: Tensor, gains: Tensor) -> Tensor:
        """The noisy input with one gain per patch and frequency (a Wiener-like mask: a hat
        keeps the input's high band at the right level while its low band is muted; a kick
        the reverse; silence is all zero). Predicting such a texture sample by sample is what
        a network on folded patches learns slowest (it blurs hats and snare wires). Only bins
        from ``mask_from`` up are masked: below, a kick's band, any gain left on the noise is
        noise the sampler commits to, and kicks hissed."""
        gains = gains * self.bins.to(folded.dtype)
        if self.config.mask == "mdct":
            return patches.lapped_mask(folded, gains, self.lapped.to(folded.dtype))
        return patches.block_mask(folded, gains, self.dct.to(folded.dtype))
