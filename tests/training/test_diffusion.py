"""Schedule, v-objective, EMA and the DDIM sampler, each against its definition."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch
from drumkit import CLASSES, REPO, clip
from torch import Tensor, nn

from core import params as core_params
from training.config import build_model
from training.diffusion import (
    SAMPLERS,
    alpha_sigma,
    crash_inverse,
    crash_schedule,
    ddim_invert,
    ddim_sample,
    grid_averaged,
    guided_v,
    make_ema,
    sample_t,
    schedule,
    slerp,
    solve,
    t_from_alpha_sigma,
    training_loss,
    v_target,
)
from training.model import Denoiser


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


def test_a_low_noise_share_cubes_that_share_of_the_training_levels() -> None:
    """``train.low_noise_share``: a random share of the levels cubed (more of them in the last
    sampler steps), the rest as drawn; 0 draws the same levels as before."""

    def draw(share: float) -> Tensor:
        return sample_t(40000, torch.Generator().manual_seed(5), name="cosine", low_share=share)

    plain = draw(0.0)
    torch.testing.assert_close(
        plain, sample_t(40000, torch.Generator().manual_seed(5), None, "cosine")
    )
    torch.testing.assert_close(draw(1.0), plain**3)
    quarter = draw(0.25)
    cubed = quarter != plain
    assert float(cubed.float().mean()) == pytest.approx(0.25, abs=0.01)
    torch.testing.assert_close(quarter[cubed], plain[cubed] ** 3)
    assert float((plain < 0.016).float().mean()) == pytest.approx(0.016, abs=0.003)
    assert float((quarter < 0.016).float().mean()) == pytest.approx(0.075, abs=0.005)
    x0 = torch.randn(6, 1, 64, generator=torch.Generator().manual_seed(1))
    model = Recorder()
    training_loss(model, x0, None, 0.0, torch.Generator().manual_seed(7), low_share=1.0)
    ((_, t, _),) = model.calls
    torch.testing.assert_close(t, sample_t(6, torch.Generator().manual_seed(7)) ** 3)


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


# ----------------------------------------------------------------------------- sampling


def test_schedule_runs_from_its_start_to_zero_on_the_crash_grid() -> None:
    for steps in (1, 2, 7, 50):
        for t_start in (1.0, 0.7, 0.3, 0.02):
            ts = schedule(steps, t_start)
            assert ts.shape == (steps + 1,) and ts.dtype == torch.float32
            assert ts[0].item() == torch.tensor(t_start).item() and ts[-1].item() == 0.0
            assert (ts.diff() < 0).all()  # strictly decreasing: no step is wasted
            # Evenly spaced before the warp, so a partial run keeps DD's spacing of steps.
            u = crash_inverse(ts.double())
            torch.testing.assert_close(u.diff(), u.diff().mean().expand(steps), atol=1e-5, rtol=0)
    # From t = 1 it is exactly DD's sampling grid: crash_schedule(linspace(1, 0)).
    grid = crash_schedule(torch.linspace(1, 0, 26, dtype=torch.float64)).float()
    torch.testing.assert_close(schedule(25), grid)
    # A partial run from t_start < 1 is given the steps it asks for, inside [0, t_start].
    assert len(schedule(10, 0.1)) == 11 and (schedule(10, 0.1) <= 0.1).all()


@pytest.mark.parametrize(("steps", "t_start"), [(0, 1.0), (-3, 1.0), (5, 0.0), (5, -0.1), (5, 1.5)])
def test_schedule_refuses_bad_arguments(steps: int, t_start: float) -> None:
    with pytest.raises(ValueError):
        schedule(steps, t_start)


def test_crash_inverse_inverts_the_crash_schedule() -> None:
    u = torch.linspace(0, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(crash_inverse(crash_schedule(u)), u, atol=1e-6, rtol=0)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(crash_schedule(crash_inverse(t)), t, atol=1e-9, rtol=0)
    assert crash_inverse(torch.tensor(0.0)) == 0
    assert torch.isclose(crash_inverse(torch.tensor(1.0)), torch.tensor(1.0))


def _noised(x0: Tensor, noise: Tensor, t: float) -> Tensor:
    alpha, sigma = alpha_sigma(torch.tensor(t))
    return alpha * x0 + sigma * noise


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_from_any_level_returns_the_oracles_clip(sampler: str) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 2, 128, generator=g).clamp(-1, 1)
    noise = torch.randn(3, 2, 128, generator=g)
    v = guided_v(Oracle(x0))
    for t_start in (1.0, 0.6, 0.1):
        for steps in (1, 2, 9):
            out = solve(v, _noised(x0, noise, t_start), schedule(steps, t_start), sampler)
            torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_solve_refuses_an_unknown_sampler() -> None:
    with pytest.raises(ValueError, match="dpmpp-2m"):
        solve(guided_v(Oracle(torch.zeros(1, 1, 8))), torch.randn(1, 1, 8), schedule(3), "euler")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_project_sees_each_step_once_in_order_and_its_rewrite_counts(sampler: str) -> None:
    """With the oracle every state lies on the clip's noising path, so what ``project`` gets at
    step i is known exactly; a shift it adds carries on, scaled by the noise ratio, and what it
    returns at the last step is the result."""
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 1, 64, generator=g), torch.randn(2, 1, 64, generator=g)
    shift, marker = torch.randn(2, 1, 64, generator=g), torch.randn(2, 1, 64, generator=g)
    ts, seen = schedule(6, 0.8), []
    sig = [float(alpha_sigma(t)[1]) for t in ts]

    def project(x: Tensor, i: int) -> Tensor:
        seen.append((i, x.clone()))
        if i == 2:
            return x + shift
        return marker if i == len(ts) - 2 else x

    out = solve(guided_v(Oracle(x0)), _noised(x0, noise, 0.8), ts, sampler, project)
    assert [i for i, _ in seen] == list(range(len(ts) - 1))
    for i, x in seen:
        want = _noised(x0, noise, float(ts[i + 1]))
        if i > 2:  # the shift added after step 2 survives in the noise estimate
            want = want + shift * (sig[i + 1] / sig[3])
        torch.testing.assert_close(x, want, atol=1e-4, rtol=1e-4)
    assert torch.equal(out, marker)


def test_ddim_inversion_becomes_exact_as_it_refines() -> None:
    """A smooth nonlinear v: each refinement pass brings the inverted noise closer to the one
    DDIM maps back to x0, and many passes make the round trip exact."""
    w = torch.randn(8, 8, generator=torch.Generator().manual_seed(2)) / 8**0.5

    def v(x: Tensor, t: Tensor) -> Tensor:
        return 0.5 * torch.tanh(torch.einsum("ij,bcj->bci", w, x)) * t[:, None, None] - 0.3 * x

    x0 = torch.randn(3, 1, 8, generator=torch.Generator().manual_seed(3))
    ts = schedule(12)
    errors = []
    for refine in (0, 1, 2, 4, 12):
        back = solve(v, ddim_invert(v, x0, ts, refine), ts, "ddim")
        errors.append(float((back - x0).norm() / x0.norm()))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[0] > 1e-2 and errors[-1] < 1e-5, errors


def test_slerp_keeps_the_norm_and_falls_back_to_lerp_when_straight() -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 2, 500, generator=g), torch.randn(2, 2, 500, generator=g)
    assert slerp(a, b, 0.5).shape == a.shape and slerp(a, b, 0.5).dtype == a.dtype
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    # Two independent Gaussian noises are nearly orthogonal: slerp keeps their norm all along,
    # where a straight mix would shrink it by about 1/sqrt(2) half way.
    for w in (0.25, 0.5, 0.75):
        ratio = slerp(a, b, w).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)
        assert ((ratio - 1).abs() < 0.05).all(), ratio
    # Exactly orthogonal, equal norms: the half-way point is (a + b) / sqrt(2), per item.
    e1, e2 = torch.zeros(2, 1, 4), torch.zeros(2, 1, 4)
    e1[0, 0, 0], e2[0, 0, 1], e1[1, 0, 2], e2[1, 0, 3] = 3, 3, 2, 2
    torch.testing.assert_close(slerp(e1, e2, 0.5), (e1 + e2) / math.sqrt(2))
    # (Nearly) parallel inputs have no plane to rotate in: a plain lerp, without NaN.
    near = a * (1 + 1e-9)
    for bb in (a.clone(), near, 2 * a):
        out = slerp(a, bb, 0.3)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, 0.7 * a + 0.3 * bb)
    # One straight item does not disturb the other's slerp.
    mixed = torch.stack([b[0], a[1]])
    out = slerp(a, mixed, 0.5)
    torch.testing.assert_close(out[1], a[1])
    torch.testing.assert_close(out[0], slerp(a[:1], b[:1], 0.5)[0])


class Labelled(nn.Module):
    """A v that depends on the label nonlinearly, returns float64 and counts its calls."""

    null_label = 3

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        self.calls += 1
        lab = labels if labels is not None else torch.full((x.shape[0],), self.null_label)
        return (torch.sin(x * (1 + lab[:, None, None])) * t[:, None, None]).double()


def test_guided_v_mixes_conditional_and_null_in_float32() -> None:
    model = Labelled()
    g = torch.Generator().manual_seed(5)
    x, t = torch.randn(3, 2, 16, generator=g), torch.rand(3, generator=g)
    labels, null = torch.tensor([0, 2, 1]), torch.full((3,), Labelled.null_label)
    v_cond, v_null = model(x, t, labels).float(), model(x, t, null).float()
    plain = guided_v(model, labels)(x, t)  # guidance 1: just the conditional model
    assert plain.dtype == torch.float32
    assert torch.equal(plain, v_cond)
    assert torch.equal(guided_v(model, None, 3.0)(x, t), v_null)  # no labels: the null class
    for g_scale in (0.0, 2.0, 4.5):
        model.calls = 0
        out = guided_v(model, labels, g_scale)(x, t)
        assert model.calls == 1  # both halves in one batched call
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, v_null + g_scale * (v_cond - v_null))
    unconditional = Labelled()
    unconditional.null_label = None
    with pytest.raises(ValueError, match="classes"):
        guided_v(unconditional, labels, 2.0)


def _dpmpp_2m_reference(v: Callable[[Tensor, Tensor], Tensor], x: Tensor, ts: Tensor) -> Tensor:
    """DPM-Solver++(2M) as k-diffusion's ``sample_dpmpp_2m`` writes it, in float64, on the
    variance-exploding view of the same ODE (z = x / alpha at sigma_ve = sigma / alpha) with
    the denoiser x0 = alpha x - sigma v: an independent statement of the solver."""
    ts = ts.double()
    alpha, sigma = alpha_sigma(ts)
    sig = sigma / alpha
    sig[-1] = 0.0
    z, old, h_last = x.double() / alpha[0], None, 0.0
    for i in range(len(ts) - 1):
        x_t = z * alpha[i]
        denoised = alpha[i] * x_t - sigma[i] * v(x_t.float(), ts[i].float().expand(len(x)))
        if sig[i + 1] == 0:
            return denoised.double()
        h = float(torch.log(sig[i] / sig[i + 1]))
        d = denoised.double()
        if old is not None:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * old
        z = sig[i + 1] / sig[i] * z - math.expm1(-h) * d
        old, h_last = denoised.double(), h
    raise AssertionError("the schedule must end at 0")


def test_dpmpp_2m_matches_the_k_diffusion_formulation() -> None:
    def v(x: Tensor, t: Tensor) -> Tensor:
        tt = t[:, None, None]
        return torch.tanh(1.5 * x) * (1 - tt) + 0.3 * torch.sin(3 * x) * tt + 0.2 * x

    x = torch.randn(2, 1, 32, generator=torch.Generator().manual_seed(6))
    for steps, t_start in ((1, 0.9), (2, 0.9), (8, 0.9), (15, 0.5)):
        ts = schedule(steps, t_start)
        want = _dpmpp_2m_reference(v, x, ts).float()
        torch.testing.assert_close(solve(v, x, ts, "dpmpp-2m"), want, atol=2e-5, rtol=1e-4)
    ts = schedule(8, 0.9)  # and it is a different solver from DDIM
    assert not torch.allclose(solve(v, x, ts, "ddim"), solve(v, x, ts, "dpmpp-2m"), atol=1e-3)


# The real `tiny` preset (params.yaml) on short clips at a low rate, so each network call is a
# few tens of milliseconds on one core.
TINY_RATE, TINY_LENGTH = 8000, 2048


@pytest.fixture(scope="module")
def tiny() -> Iterator[Denoiser]:
    """The `tiny` model after 10 AdamW steps on one clip of each drum class.

    Random init barely denoises: its guided sample stays within 17 % of the starting noise,
    so the flow is nearly a rescaling and any solver looks accurate. After these few steps (a
    few seconds) v depends on the data and the sample moves about 50 % away from its noise:
    a curved flow on which the solvers' errors mean something. One thread: the network is
    small enough that a second one mostly adds overhead.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    params = core_params.read_yaml(REPO / "params.yaml")
    params["audio"].update(sample_rate=TINY_RATE, duration=TINY_LENGTH / TINY_RATE, channels=1)
    params["model"]["preset"] = "tiny"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(core_params.parse(params), CLASSES)
    assert model.preset["name"] == "tiny"
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    crop = _tiny_clips()[..., :1536]  # the shortest length the U-Net takes: cheaper steps
    for _ in range(10):
        loss = training_loss(model, crop, torch.arange(len(CLASSES)), 0.1, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    yield model.eval().requires_grad_(False)
    torch.set_num_threads(threads)


def _tiny_clips() -> Tensor:
    """One demo-kit clip per class, [4, 1, TINY_LENGTH]."""
    return torch.stack([torch.from_numpy(clip(c, 0, TINY_LENGTH, TINY_RATE)) for c in CLASSES])


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _ratios(errors: list[float]) -> list[float]:
    """How much each doubling of the step count shrinks the error."""
    return [a / b for a, b in zip(errors, errors[1:], strict=False)]


def test_few_step_solver_converges_to_the_ddim_result_on_the_tiny_model(tiny: Denoiser) -> None:
    """Generation from pure noise with guidance, as `training.sample` runs it.

    The reference is DDIM's own limit: many-step DDIM, Richardson-extrapolated
    (2 DDIM(64) - DDIM(32) cancels DDIM's first-order error; it agrees with 512-step
    DPM-Solver++ to 5e-4 relative, 13x below the smallest error measured here). Measured
    (relative L2): ddim 5/10/20 .28/.15/.075; dpmpp-2m .10/.014/.0062.
    """
    v = guided_v(tiny, torch.tensor([0, 1]), 2.0)
    noise = torch.randn(2, 1, TINY_LENGTH, generator=torch.Generator().manual_seed(1))
    ddim_32 = solve(v, noise, schedule(32), "ddim")
    reference = 2 * solve(v, noise, schedule(64), "ddim") - ddim_32
    assert _rel(noise, reference) > 0.3  # the flow really moves the noise
    steps = (5, 10, 20)
    err = {s: [_rel(solve(v, noise, schedule(n), s), reference) for n in steps] for s in SAMPLERS}
    ddim, dpm = err["ddim"], err["dpmpp-2m"]
    # DDIM is first order and tends to the reference: each doubling halves its error.
    assert all(1.6 < r < 2.4 for r in _ratios(ddim)), ddim
    # DPM-Solver++(2M) tends to the same result, and is closer at every step count...
    assert dpm[0] > dpm[1] > dpm[2] and dpm[2] < 0.02, dpm
    assert all(p < 0.5 * d for p, d in zip(dpm, ddim, strict=True)), (dpm, ddim)
    # ...and 4x the steps shrink its error far more than DDIM's (measured 16x vs 3.7x).
    assert dpm[0] / dpm[2] > 2 * ddim[0] / ddim[2], (dpm, ddim)


def test_dpmpp_2m_is_second_order_where_ddim_is_first_on_the_tiny_model(tiny: Denoiser) -> None:
    """The observed order, on a variation's partial run from t = 0.9 (a noised drum clip).

    From t = 1 the crash grid's first steps stay large in log-SNR whatever the step count (the
    log-SNR spacing there is log(k / (k - 1))), which blurs the order at 5-40 steps; from 0.9
    every step shrinks with the step count and halving it shows the orders cleanly. Measured
    error ratios per halving: dpmpp-2m 5.1, 5.7; ddim 1.9, 1.9.
    """
    v = guided_v(tiny, torch.tensor([2, 3]), 2.0)
    noise = torch.randn(2, 1, TINY_LENGTH, generator=torch.Generator().manual_seed(2))
    x = _noised(_tiny_clips()[2:], noise, 0.9)
    reference = solve(v, x, schedule(64, 0.9), "dpmpp-2m")
    steps = (4, 8, 16)
    err = {s: [_rel(solve(v, x, schedule(n, 0.9), s), reference) for n in steps] for s in SAMPLERS}
    assert all(1.6 < r < 2.4 for r in _ratios(err["ddim"])), err  # ~2x: first order
    assert all(r > 3.5 for r in _ratios(err["dpmpp-2m"])), err  # ~4x: second order


def test_ddim_inversion_round_trip_on_the_tiny_model(tiny: Denoiser) -> None:
    """Inverting a real drum clip and sampling back (interpolation's ends): classic inversion
    (refine 0) is far off; the fixed-point passes make it reconstruct the clip. Measured
    (10 steps): .39 / .023 / .0092 relative L2 for refine 0 / 1 / 2."""
    v = guided_v(tiny, torch.tensor([2]))
    x0 = _tiny_clips()[2:3]
    ts = schedule(10)
    back = [solve(v, ddim_invert(v, x0, ts, refine), ts, "ddim") for refine in (0, 1, 2)]
    errors = [_rel(x, x0) for x in back]
    assert errors[1] < errors[0] / 4 and errors[2] < 0.7 * errors[1], errors
    assert errors[2] < 0.02, errors


def _grid_error(n: int, patch: int, harmonics: range) -> Tensor:
    """A pattern that repeats every ``patch`` samples from the input's first sample: what a
    network writing each patch from the same weights adds, whatever the sound."""
    i = torch.arange(n, dtype=torch.float64)
    wave = sum(torch.cos(2 * math.pi * k * i / patch + k) / k for k in harmonics)
    return wave.float()


def test_grid_averaging_cancels_a_patch_grid_error_and_keeps_the_sound() -> None:
    """8 shifts of a 32-sample grid: the error's first 7 multiples of the patch rate cancel,
    the 8th stays; the part of the output that follows the sound is untouched; above
    ``below`` and with 1 shift nothing changes."""
    patch, n = 32, 2048
    calls: list[int] = []

    def v_fn(x: Tensor, t: Tensor) -> Tensor:
        calls.append(x.shape[-1])
        return 0.5 * x + _grid_error(x.shape[-1], patch, range(1, 10))

    x, low, high = torch.randn(2, 1, n), torch.full((2,), 0.01), torch.full((2,), 0.5)
    v = grid_averaged(v_fn, patch, 8, 0.02)
    out = v(x, low)
    assert len(calls) == 8 and set(calls) == {n + patch}
    error = (out - 0.5 * x)[0, 0].double()
    spectrum = torch.fft.rfft(error).abs() / (n / 2)
    per_patch = n // patch  # FFT bin of the patch rate
    for k in range(1, 8):
        assert spectrum[k * per_patch] < 1e-5, k
    torch.testing.assert_close(spectrum[8 * per_patch], torch.tensor(1 / 8, dtype=torch.float64))
    assert spectrum[9 * per_patch] < 1e-5
    calls.clear()
    torch.testing.assert_close(v(x, high), v_fn(x, high))  # above `below`: one plain call
    assert calls == [n, n]
    assert grid_averaged(v_fn, patch, 1, 1.0) is v_fn and grid_averaged(v_fn, 1, 8, 1.0) is v_fn
