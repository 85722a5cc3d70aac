"""Diffusion maths of Dance Diffusion: v-objective, cosine schedule, EMA and a DDIM sampler.

A clean clip x0 and Gaussian noise mix as ``x_t = alpha x0 + sigma noise`` with
``alpha, sigma = cos(pi t / 2), sin(pi t / 2)``; the network predicts
``v = alpha noise - sigma x0``, from which both x0 and the noise follow. As in Dance Diffusion
(sample-generator ``train_uncond.py``), training draws t uniformly and warps it through the
"crash" schedule, and the sampler steps through the same warped grid from t = 1 towards 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """Scales of the clean signal and of the noise at noise level t in [0, 1]."""
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def t_from_alpha_sigma(alpha: Tensor, sigma: Tensor) -> Tensor:
    return torch.atan2(sigma, alpha) * 2 / math.pi


def crash_schedule(t: Tensor) -> Tensor:
    """DD's warp of t (from CRASH): sigma = sin(pi t / 2) ** 2, spending more time at low noise."""
    sigma = torch.sin(t * math.pi / 2) ** 2
    alpha = (1 - sigma**2) ** 0.5
    return t_from_alpha_sigma(alpha, sigma)


def sample_t(
    batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Training noise levels: uniform, then the crash schedule, as DD trains.

    Drawn on ``generator``'s device (so a seeded generator reproduces them), then moved.
    """
    where = generator.device if generator is not None else device
    u = torch.rand(batch, generator=generator, device=where)
    return crash_schedule(u).to(device) if device is not None else crash_schedule(u)


def v_target(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    alpha, sigma = (s.view(-1, *([1] * (x0.ndim - 1))) for s in alpha_sigma(t))
    return alpha * noise - sigma * x0


def _unwrap(model: nn.Module) -> nn.Module:
    """The Denoiser inside DDP / Fabric / AveragedModel wrappers (each keeps it as ``.module``)."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def training_loss(
    model: nn.Module,
    x0: Tensor,
    labels: Tensor | None = None,
    label_dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean squared error of the v-prediction on one batch of clean clips x0 [B, C, N].

    ``labels`` are replaced by the model's null class at rate ``label_dropout``, so the same
    network also learns the unconditional score that classifier-free guidance needs. Noise,
    noise levels and the dropout mask come from ``generator`` (give each DDP rank its own seed).
    """
    b, device = x0.shape[0], x0.device
    where = generator.device if generator is not None else device
    t = sample_t(b, generator, device)
    noise = torch.randn(x0.shape, generator=generator, device=where, dtype=x0.dtype).to(device)
    if labels is not None:
        null = _unwrap(model).null_label
        if null is None:
            raise ValueError("labels given to a model without classes")
        if label_dropout > 0:
            drop = torch.rand(b, generator=generator, device=where).to(device) < label_dropout
            labels = torch.where(drop, torch.full_like(labels, null), labels)
    alpha, sigma = (s[:, None, None] for s in alpha_sigma(t))
    v = model(x0 * alpha + noise * sigma, t, labels)
    return F.mse_loss(v.float(), v_target(x0, noise, t).float())


def ema_avg_fn(decay: float, warmup: float = 10.0) -> Callable[..., None]:
    """``multi_avg_fn`` for AveragedModel: EMA whose decay ramps up as (1 + n) / (warmup + n).

    A fixed 0.999 would leave the average near the random init for the first thousand steps,
    which is most of a short CPU run; the ramp tracks the weights early and settles at decay.
    """

    def update(ema_params: list[Tensor], params: list[Tensor], n: Tensor) -> None:
        d = min(decay, (1 + float(n)) / (warmup + float(n)))
        torch._foreach_lerp_(ema_params, params, 1 - d)

    return update


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model`` (``.module`` is the averaged Denoiser); call
    ``ema.update_parameters(model)`` after each optimizer step. Buffers are copied, not averaged
    (they are constant resampling kernels)."""
    return AveragedModel(_unwrap(model), multi_avg_fn=ema_avg_fn(decay), use_buffers=False)


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    noise: Tensor,
    steps: int,
    labels: Tensor | None = None,
    guidance: float = 1.0,
    progress: bool = False,
) -> Tensor:
    """Deterministic DDIM (eta 0) from pure noise to x0, on DD's schedule (``sample()``).

    With labels and ``guidance != 1`` each step mixes the conditional and null-class
    predictions, ``v_null + guidance * (v_cond - v_null)`` (classifier-free guidance).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    b = noise.shape[0]
    t = crash_schedule(torch.linspace(1, 0, steps + 1, device=noise.device)[:-1])
    alphas, sigmas = alpha_sigma(t)
    guided = labels is not None and guidance != 1.0
    if guided:
        null = _unwrap(model).null_label
        labels = torch.cat([labels, torch.full_like(labels, null)])
    x, pred = noise, noise
    for i in tqdm(range(steps), desc="sampling", disable=not progress, leave=False):
        ts = t[i].expand(b)
        if guided:
            v_cond, v_null = model(x.repeat(2, 1, 1), ts.repeat(2), labels).float().chunk(2)
            v = v_null + guidance * (v_cond - v_null)
        else:
            v = model(x, ts, labels).float()
        pred = x * alphas[i] - v * sigmas[i]
        if i < steps - 1:
            eps = x * sigmas[i] + v * alphas[i]
            x = pred * alphas[i + 1] + eps * sigmas[i + 1]
    return pred
