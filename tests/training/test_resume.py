"""training.resume: the weights a fresh run starts from, the checkpoint a killed run goes on
from, and another run's checkpoint kept aside. (Resuming end to end, through the command, is
in test_train.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from drumkit import CLASSES, LENGTH, SAMPLE_RATE, TEST_PRESET

from core.errors import ConfigError
from training.checkpoints import save_checkpoint
from training.foldnet import CLASS_KEYS, FoldConfig
from training.model import Denoiser, UNetConfig
from training.resume import SCHEDULE_KEYS, differences, init_from_checkpoint, set_aside


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _checkpoint(path: Path, model: Denoiser) -> None:
    save_checkpoint(
        path,
        preset=model.preset,
        class_names=model.class_names,
        sample_rate=model.sample_rate,
        length=model.length,
        data_channels=model.data_channels,
        model=model.state_dict(),
        ema=model.state_dict(),
        step=0,
    )


def test_init_checkpoint_loads_the_unet_and_matching_classes(tmp_path: Path) -> None:
    preset = UNetConfig.from_preset({"name": "test", **TEST_PRESET})
    torch.manual_seed(1)
    source = Denoiser(preset, CLASSES, SAMPLE_RATE, LENGTH, 1)
    with torch.no_grad():
        for p in source.cond.parameters():
            p.normal_()
    _checkpoint(tmp_path / "same.pt", source)

    torch.manual_seed(2)
    model = Denoiser(preset, CLASSES, SAMPLE_RATE, LENGTH, 1)
    what = init_from_checkpoint(model, str(tmp_path / "same.pt"))
    assert "with its class conditioning" in what
    assert _same_weights(model.state_dict(), source.state_dict())

    # Other classes: the U-Net is taken, the new conditioning starts at zero, so every label
    # gives the pretrained network's output.
    other = Denoiser(preset, ["tom", "ride"], SAMPLE_RATE, LENGTH, 1)
    assert "starts at zero" in init_from_checkpoint(other, str(tmp_path / "same.pt"))
    assert _same_weights(other.unet.state_dict(), source.unet.state_dict())
    x, t = torch.randn(3, 1, LENGTH), torch.rand(3)
    with torch.no_grad():
        v = source.unet(x, t)
        for label in (0, 1, 2):
            torch.testing.assert_close(other(x, t, torch.full((3,), label)), v)

    wider_preset = {"name": "test", **TEST_PRESET, "channels": [16, 32, 32, 32]}
    wider = Denoiser(UNetConfig.from_preset(wider_preset), CLASSES, SAMPLE_RATE, LENGTH, 1)
    with pytest.raises(ConfigError, match=r"channels .* choose the matching preset"):
        init_from_checkpoint(wider, str(tmp_path / "same.pt"))


FOLD = {
    "arch": "fold", "io_channels": 1, "fold": 8, "channels": [16, 32], "blocks": 1, "factor": 4,
    "heads": 2, "pos": 4, "class_dim": 16, "lengths": True, "name": "small",
}  # fmt: skip


def test_a_fold_checkpoint_fine_tunes_with_dropout_and_on_other_classes(tmp_path: Path) -> None:
    """The default preset fine-tunes from a models/*.pt (a small kit on the demo model, with
    dropout): the same classes take every weight; other classes all but the class-shaped ones."""
    torch.manual_seed(1)
    source = Denoiser(FoldConfig.from_preset(FOLD), CLASSES, SAMPLE_RATE, LENGTH, 1)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
        source.unet.length_counts.fill_(3.0)
    _checkpoint(tmp_path / "fold.pt", source)

    torch.manual_seed(2)
    dropped = FoldConfig.from_preset({**FOLD, "dropout": 0.1})
    model = Denoiser(dropped, CLASSES, SAMPLE_RATE, LENGTH, 1)
    model.unet.length_counts.fill_(1.0)  # what training counted in its own data
    assert "with its class conditioning" in init_from_checkpoint(model, str(tmp_path / "fold.pt"))
    lengths = model.unet.length_counts.clone()
    assert torch.equal(lengths, torch.ones_like(lengths))  # this kit's lengths, not the source's
    model.unet.length_counts.copy_(source.unet.length_counts)
    assert _same_weights(model.state_dict(), source.state_dict())

    other = Denoiser(dropped, ["tom", "ride"], SAMPLE_RATE, LENGTH, 1)
    fresh = {k: v.clone() for k, v in other.unet.state_dict().items() if k.startswith(CLASS_KEYS)}
    assert fresh and "starts afresh" in init_from_checkpoint(other, str(tmp_path / "fold.pt"))
    theirs = source.unet.state_dict()
    for k, v in other.unet.state_dict().items():
        assert torch.equal(v, fresh[k] if k in fresh else theirs[k]), k

    wider = Denoiser(FoldConfig.from_preset({**FOLD, "channels": [16, 48]}), CLASSES,
                     SAMPLE_RATE, LENGTH, 1)  # fmt: skip
    with pytest.raises(ConfigError, match=r"channels \[16, 32\] vs \[16, 48\]"):
        init_from_checkpoint(wider, str(tmp_path / "fold.pt"))


@pytest.mark.parametrize("arch", ["fold", "dance-diffusion"])
def test_a_fine_tune_on_other_classes_keeps_the_shared_ones_by_name(
    tmp_path: Path, arch: str
) -> None:
    """The demo model's kick, snare and hihat stay themselves on a kit that orders its classes
    otherwise and adds a tom: each shared class (and the null class of guidance) takes its own
    row of the checkpoint's embedding; the new class starts afresh."""
    preset = (
        FoldConfig.from_preset(FOLD)
        if arch == "fold"
        else UNetConfig.from_preset({"name": "test", **TEST_PRESET})
    )
    torch.manual_seed(1)
    source = Denoiser(preset, CLASSES, SAMPLE_RATE, LENGTH, 1)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    _checkpoint(tmp_path / "src.pt", source)

    torch.manual_seed(2)
    names = ["hihat", "tom", "kick"]
    model = Denoiser(preset, names, SAMPLE_RATE, LENGTH, 1)
    embed = model.unet.labels if arch == "fold" else model.cond.embed
    before = embed.weight.detach().clone()
    what = init_from_checkpoint(model, str(tmp_path / "src.pt"))
    assert what.endswith("with its conditioning of hihat, kick; new classes start afresh: tom")

    theirs = (source.unet.labels if arch == "fold" else source.cond.embed).weight.detach()
    mine = embed.weight.detach()
    for i, name in enumerate(names):
        want = theirs[CLASSES.index(name)] if name in CLASSES else before[i]
        assert torch.equal(mine[i], want), name
    assert torch.equal(mine[len(names)], theirs[len(CLASSES)])  # the null class
    if arch == "dance-diffusion":  # the projections of the embedding into the levels too
        assert _same_weights(
            {k: v for k, v in model.cond.state_dict().items() if k != "embed.weight"},
            {k: v for k, v in source.cond.state_dict().items() if k != "embed.weight"},
        )
    # The shared classes sound as they did: same network, same embedding row.
    x, t = torch.randn(2, 1, LENGTH), torch.rand(2)
    with torch.no_grad():
        for name in ("kick", "hihat"):
            new, old = torch.full((2,), names.index(name)), torch.full((2,), CLASSES.index(name))
            torch.testing.assert_close(model(x, t, new), source(x, t, old))


def test_only_how_long_and_how_often_may_change_between_runs() -> None:
    old = {"train": {"lr": 1e-3, "seed": 0}, "data": "abc", "preset": {"depth": 4}}
    assert differences(old, old) == []
    new = {"train": {"lr": 5e-4, "seed": 0}, "data": "abd", "preset": {"depth": 4}}
    assert differences(old, new) == ["data", "train.lr"]
    assert {"steps", "checkpoint_every", "demo_every"} <= set(SCHEDULE_KEYS)


def test_set_aside_never_overwrites_a_kept_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "last.pt"
    kept = []
    for i in range(3):
        last.write_text(str(i))
        kept.append(set_aside(last))
    assert not last.exists()
    assert len(set(kept)) == 3 and [p.read_text() for p in kept] == ["0", "1", "2"]
    assert all(p.name.startswith("last-") and p.suffix == ".pt" for p in kept)
