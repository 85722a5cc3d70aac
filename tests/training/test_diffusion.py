"""Schedule, v-objective, EMA and the DDIM sampler, each against its definition."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from training.diffusion import (
    alpha_sigma,
    crash_schedule,
    ddim_sample,
    make_ema,
    sample_t,
    t_from_alpha_sigma,
    training_loss,
    v_target,
)


def test_schedule_is_the_cosine_one_and_inverts() -> None:
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(alpha, torch.cos(math.pi / 2 * t))
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))
    torch.testing.assert_close(t_from_alpha_sigma(alpha, sigma), t)


def test_crash_schedule_warps_zero_to_one_monotonically() -> None:
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    w = crash_schedule(t)
    assert w[0] == 0 and torch.isclose(w[-1], torch.tensor(1.0, dtype=torch.float64))
    assert (w.diff() > 0).all()
    assert (w[1:-1] < t[1:-1]).all()  # more time at low noise levels
    _, sigma = alpha_sigma(w)  # its definition: sigma = sin(pi t / 2) ** 2
    torch.testing.assert_close(sigma, torch.sin(math.pi / 2 * t) ** 2)


def test_sample_t_is_seeded_uniform_through_the_crash_schedule() -> None:
    t = sample_t(4096, torch.Generator().manual_seed(3))
    torch.testing.assert_close(t, sample_t(4096, torch.Generator().manual_seed(3)))
    u = torch.rand(4096, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(t, crash_schedule(u))
    assert t.min() >= 0 and t.max() <= 1


def test_v_target_recovers_clean_signal_and_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x0, noise, t = torch.randn(4, 2, 64, generator=g), torch.randn(4, 2, 64, generator=g), None
    t = torch.rand(4, generator=g)
    alpha, sigma = (s[:, None, None] for s in alpha_sigma(t))
    x_t = alpha * x0 + sigma * noise
    v = v_target(x0, noise, t)
    torch.testing.assert_close(alpha * x_t - sigma * v, x0)
    torch.testing.assert_close(sigma * x_t + alpha * v, noise)


class Recorder(nn.Module):
    """Returns a learnable constant and remembers its inputs."""

    null_label = 4

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[Tensor, Tensor, Tensor | None]] = []

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        self.calls.append((x, t, labels))
        return torch.zeros_like(x) + self.bias


def test_training_loss_is_v_mse_on_seeded_noise() -> None:
    x0 = torch.randn(6, 1, 128, generator=torch.Generator().manual_seed(1))
    model = Recorder()
    loss = training_loss(model, x0, None, 0.0, torch.Generator().manual_seed(7))
    ((x_t, t, labels),) = model.calls
    assert labels is None
    g = torch.Generator().manual_seed(7)  # the same draws, in the documented order
    torch.testing.assert_close(t, sample_t(6, g))
    noise = torch.randn(x0.shape, generator=g)
    alpha, sigma = (s[:, None, None] for s in alpha_sigma(t))
    torch.testing.assert_close(x_t, alpha * x0 + sigma * noise)
    torch.testing.assert_close(loss, v_target(x0, noise, t).pow(2).mean())
    loss.backward()
    assert model.bias.grad is not None


def test_label_dropout_swaps_in_the_null_class_at_its_rate() -> None:
    x0, labels = torch.zeros(4000, 1, 1), torch.randint(0, 4, (4000,))
    seen = {}
    for rate in (0.0, 0.25, 1.0):
        model = Recorder()
        training_loss(model, x0, labels, rate, torch.Generator().manual_seed(0))
        seen[rate] = model.calls[0][2]
    assert torch.equal(seen[0.0], labels)
    assert (seen[1.0] == Recorder.null_label).all()
    dropped = seen[0.25] == Recorder.null_label
    assert 0.2 < dropped.float().mean() < 0.3
    assert torch.equal(seen[0.25][~dropped], labels[~dropped])


def test_labels_for_a_model_without_classes_are_refused() -> None:
    model = Recorder()
    model.null_label = None
    with pytest.raises(ValueError, match="without classes"):
        training_loss(model, torch.zeros(2, 1, 8), torch.zeros(2, dtype=torch.long))


class Oracle(nn.Module):
    """The ideal denoiser for a data set of one clip: v from x_t and the known x0."""

    null_label = 2

    def __init__(self, x0: Tensor) -> None:
        super().__init__()
        self.x0 = x0

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        alpha, sigma = (s[:, None, None] for s in alpha_sigma(t))
        noise = (x - alpha * self.x0) / sigma
        return alpha * noise - sigma * self.x0


def test_ddim_with_an_oracle_recovers_the_clip() -> None:
    x0 = torch.randn(3, 2, 256, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    noise = torch.randn(3, 2, 256, generator=torch.Generator().manual_seed(1))
    for steps in (1, 10):
        torch.testing.assert_close(ddim_sample(Oracle(x0), noise, steps), x0, atol=1e-4, rtol=0)


def test_ddim_is_deterministic_and_follows_its_noise() -> None:
    torch.manual_seed(0)
    net = nn.Conv1d(1, 1, 5, padding=2)
    model = lambda x, t, labels=None: net(x) * t[:, None, None]  # noqa: E731
    noise = torch.randn(2, 1, 100, generator=torch.Generator().manual_seed(5))
    a, b = ddim_sample(model, noise, 8), ddim_sample(model, noise.clone(), 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, ddim_sample(model, noise + 0.1, 8))
    with pytest.raises(ValueError):
        ddim_sample(model, noise, 0)


def test_classifier_free_guidance_mixes_conditional_and_null_predictions() -> None:
    class ByLabel(nn.Module):
        null_label = 3

        def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
            shift = labels.float()[:, None, None] if labels is not None else 0.0
            return 0.5 * x + 0.1 * shift * t[:, None, None]

    model, g = ByLabel(), 3.0
    labels = torch.tensor([0, 1, 2])

    def mixed(x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        null = torch.full_like(labels, ByLabel.null_label)
        return model(x, t, null) + g * (model(x, t, labels) - model(x, t, null))

    noise = torch.randn(3, 1, 50, generator=torch.Generator().manual_seed(0))
    guided = ddim_sample(model, noise, 6, labels, guidance=g)
    torch.testing.assert_close(guided, ddim_sample(mixed, noise, 6, labels))
    plain = ddim_sample(model, noise, 6, labels)  # guidance 1: just the conditional model
    assert not torch.allclose(guided, plain)


def test_ema_copies_then_averages_with_a_warming_decay() -> None:
    model = nn.Linear(3, 2)
    model.register_buffer("kernel", torch.ones(2))
    ema = make_ema(model, decay=0.9)
    avg = ema.module
    ema.update_parameters(model)  # the first update copies
    assert torch.equal(avg.weight, model.weight)
    before = avg.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
        model.kernel.fill_(2.0)
    ema.update_parameters(model)  # n = 1: decay min(0.9, 2 / 11)
    d = 2 / 11
    torch.testing.assert_close(avg.weight, d * before + (1 - d) * model.weight)
    assert torch.equal(avg.kernel, model.kernel)  # buffers copied, not averaged
    for _ in range(200):
        ema.update_parameters(model)
    before = avg.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)  # late: the full decay
    torch.testing.assert_close(avg.weight, 0.9 * before + 0.1 * model.weight)
    assert int(ema.n_averaged) == 203
