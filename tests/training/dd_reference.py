"""Dance Diffusion's network written out as plain functions of its state dict, for the tests.

A transcription of the forward pass of Harmonai's ``DiffusionAttnUnet1D`` (sample-generator,
``audio_diffusion/models.py`` and ``blocks.py``): the dense resampling kernel, attention with
``d ** -0.25`` on q and k, explicit padding. It shares no code with ``training.model``, so a
match shows that the project's module computes what the original computes. Also the layout
(key -> shape) of the original's state dict, written from the same source.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# blocks._kernels['cubic'], which is exactly k / 256 for these k.
CUBIC = [k / 256 for k in (-3, -9, 29, 111, 111, 29, -9, -3)]


def forward(sd: dict[str, Tensor], x: Tensor, t: Tensor) -> Tensor:
    """The original ``DiffusionAttnUnet1D.forward(x, t)`` for the weights ``sd``."""
    f = 2 * math.pi * t[:, None] @ sd["timestep_embed.weight"].T
    emb = torch.cat([f.cos(), f.sin()], dim=-1)[..., None].repeat([1, 1, x.shape[2]])
    h = torch.cat([x, emb], dim=1)
    for i in range(3):
        h = _res(sd, f"net.{i}", h)
    h = _level(sd, "net.3", h)
    for i in range(4, 7):
        h = _res(sd, f"net.{i}", h)
    return h


def _res(sd: dict[str, Tensor], p: str, x: Tensor) -> Tensor:
    w0 = sd[f"{p}.main.0.weight"]
    h = F.conv1d(x, w0, sd[f"{p}.main.0.bias"], padding=w0.shape[2] // 2)
    h = F.gelu(F.group_norm(h, 1, sd[f"{p}.main.1.weight"], sd[f"{p}.main.1.bias"]))
    w3 = sd[f"{p}.main.3.weight"]
    h = F.conv1d(h, w3, sd[f"{p}.main.3.bias"], padding=w3.shape[2] // 2)
    if f"{p}.main.4.weight" in sd:  # every block but the last
        h = F.gelu(F.group_norm(h, 1, sd[f"{p}.main.4.weight"], sd[f"{p}.main.4.bias"]))
    skip = F.conv1d(x, sd[f"{p}.skip.weight"]) if f"{p}.skip.weight" in sd else x
    return h + skip


def _attn(sd: dict[str, Tensor], p: str, x: Tensor) -> Tensor:
    if f"{p}.qkv_proj.weight" not in sd:
        return x
    n, c, s = x.shape
    heads = c // 32
    h = F.group_norm(x, 1, sd[f"{p}.norm.weight"], sd[f"{p}.norm.bias"])
    qkv = F.conv1d(h, sd[f"{p}.qkv_proj.weight"], sd[f"{p}.qkv_proj.bias"])
    qkv = qkv.view([n, heads * 3, c // heads, s]).transpose(2, 3)
    q, k, v = qkv.chunk(3, dim=1)
    scale = k.shape[3] ** -0.25
    att = ((q * scale) @ (k.transpose(2, 3) * scale)).softmax(3)
    y = (att @ v).transpose(2, 3).contiguous().view([n, c, s])
    return x + F.conv1d(y, sd[f"{p}.out_proj.weight"], sd[f"{p}.out_proj.bias"])


def _dense(x: Tensor, kernel: list[float]) -> Tensor:
    weight = x.new_zeros([x.shape[1], x.shape[1], len(kernel)])
    idx = torch.arange(x.shape[1])
    weight[idx, idx] = torch.tensor(kernel, dtype=x.dtype)
    return weight


def _down(x: Tensor) -> Tensor:
    x = F.pad(x, (3, 3), "reflect")
    return F.conv1d(x, _dense(x, CUBIC), stride=2)


def _up(x: Tensor) -> Tensor:
    x = F.pad(x, (2, 2), "reflect")
    return F.conv_transpose1d(x, _dense(x, [2 * k for k in CUBIC]), stride=2, padding=7)


def _level(sd: dict[str, Tensor], p: str, x: Tensor) -> Tensor:
    m = f"{p}.main"
    h = _down(x)
    for i in (1, 3, 5):
        h = _attn(sd, f"{m}.{i + 1}", _res(sd, f"{m}.{i}", h))
    if f"{m}.7.main.1.main.0.weight" in sd:  # a deeper level
        h = _level(sd, f"{m}.7", h)
    for i in (8, 10, 12):
        h = _attn(sd, f"{m}.{i + 1}", _res(sd, f"{m}.{i}", h))
    return torch.cat([_up(h), x], dim=1)


def layout(
    io_channels: int, depth: int, channels: list[int], n_attn_layers: int, k: int = 5
) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the original network and its shape, in the original's order."""
    out: dict[str, tuple[int, ...]] = {"timestep_embed.weight": (8, 1)}

    def res(p: str, c_in: int, c_mid: int, c_out: int, last: bool = False) -> None:
        out.update({f"{p}.main.0.weight": (c_mid, c_in, k), f"{p}.main.0.bias": (c_mid,)})
        out.update({f"{p}.main.1.weight": (c_mid,), f"{p}.main.1.bias": (c_mid,)})
        out.update({f"{p}.main.3.weight": (c_out, c_mid, k), f"{p}.main.3.bias": (c_out,)})
        if not last:
            out.update({f"{p}.main.4.weight": (c_out,), f"{p}.main.4.bias": (c_out,)})
        if c_in != c_out:
            out[f"{p}.skip.weight"] = (c_out, c_in, 1)

    def attn(p: str, c: int, on: bool) -> None:
        if on:
            out.update({f"{p}.norm.weight": (c,), f"{p}.norm.bias": (c,)})
            out.update({f"{p}.qkv_proj.weight": (3 * c, c, 1), f"{p}.qkv_proj.bias": (3 * c,)})
            out.update({f"{p}.out_proj.weight": (c, c, 1), f"{p}.out_proj.bias": (c,)})

    def level(p: str, i: int) -> None:
        c, c_prev = channels[i - 1], channels[i - 2]
        on = n_attn_layers > 0 and i >= depth - n_attn_layers - 1
        out[f"{p}.main.0.kernel"] = (8,)
        res(f"{p}.main.1", c_prev, c, c)
        attn(f"{p}.main.2", c, on)
        res(f"{p}.main.3", c, c, c)
        attn(f"{p}.main.4", c, on)
        res(f"{p}.main.5", c, c, c)
        attn(f"{p}.main.6", c, on)
        if i < depth:
            level(f"{p}.main.7", i + 1)
        res(f"{p}.main.8", c * 2 if i != depth else c, c, c)
        attn(f"{p}.main.9", c, on)
        res(f"{p}.main.10", c, c, c)
        attn(f"{p}.main.11", c, on)
        res(f"{p}.main.12", c, c, c_prev)
        attn(f"{p}.main.13", c_prev, on)
        out[f"{p}.main.14.kernel"] = (8,)

    c0 = channels[0]
    res("net.0", io_channels + 16, c0, c0)
    res("net.1", c0, c0, c0)
    res("net.2", c0, c0, c0)
    level("net.3", 2)
    res("net.4", c0 * 2, c0, c0)
    res("net.5", c0, c0, c0)
    res("net.6", c0, c0, io_channels, last=True)
    return out
