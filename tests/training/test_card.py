"""training.card: the model card's counts (clips per class, licenses, generative-AI
preferences), the conditions that follow from them, and the evaluation table."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
from drumkit import CLASSES, LENGTH, SAMPLE_RATE, TEST_PRESET

from core.params import Params
from training import card
from training.checkpoints import save_checkpoint
from training.diffusion import make_ema
from training.model import Denoiser, UNetConfig, count_parameters
from training.resume import checkpoint_state

CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
BY4 = "https://creativecommons.org/licenses/by/4.0/"
BYNC3 = "http://creativecommons.org/licenses/by-nc/3.0/"
SAMPLING = "http://creativecommons.org/licenses/sampling+/1.0/"
NC_MODELS, OPEN_MODELS = "noncommercial-open-source-models", "open-source-models"


def _checkpoint(path: Path, step: int = 120, **extra: object) -> int:
    """models/model.pt as train writes it; returns the network's parameter count."""
    torch.manual_seed(0)
    model = Denoiser(UNetConfig.from_preset({"name": "test", **TEST_PRESET}), CLASSES,
                     SAMPLE_RATE, LENGTH, 1)  # fmt: skip
    identity = {"train": {"lr": 1e-3, "init_checkpoint": ""}}
    state = checkpoint_state(model, make_ema(model, 0.99), identity, step)
    save_checkpoint(path, **{**state, **extra})
    return count_parameters(model)


def _manifest(folder: Path, originals: list[tuple[str, str, str]], variants: int = 2) -> Path:
    """A manifest of ``(class, license, gen_ai_preference)`` originals, each with
    ``variants`` variants (which inherit both)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (cls, lic, pref) in enumerate(originals):
        for v in ["original", *(f"gain_{k}" for k in range(variants))]:
            rows.append({"path": f"{cls}/{i}_{v}.wav", "label": cls, "source": "freesound",
                         "source_id": str(i), "license": lic, "attribution": "x", "variant": v,
                         "sample_rate": str(SAMPLE_RATE), "num_samples": str(LENGTH),
                         "gen_ai_preference": pref})  # fmt: skip
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _table(text: str, heading: str) -> dict[str, str]:
    """The two-column table under ``heading``: first column -> second."""
    part = text.split(heading, 1)[1].split("\n#", 1)[0]
    rows = [line.strip("|").split("|") for line in part.splitlines() if line.startswith("| ")]
    return {r[0].strip(): r[1].strip() for r in rows[2:]}  # past the header and its rule


MIXED = [
    ("kick", CC0, "no-additional-preferences"),
    ("kick", CC0, ""),
    ("kick", BY4, OPEN_MODELS),
    ("snare", BY4, NC_MODELS),
    ("snare", BYNC3, "no-additional-preferences"),
    ("snare", SAMPLING, ""),
    ("snare", "unknown", ""),
]


def test_the_card_counts_the_training_set_and_says_what_it_allows(
    tmp_path: Path, typed: Params
) -> None:
    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir()
    n_params = _checkpoint(ckpt, step=120, stopped="stopped early: eval/frechet (...)")
    dataset = _manifest(tmp_path / "data" / "augmented", MIXED)
    card.write(ckpt, typed, dataset, None)
    text = (tmp_path / "models" / "MODEL_CARD.md").read_text(encoding="utf-8")

    assert f"preset `test`, {n_params:,} parameters" in text
    assert "- Trained: 120 optimizer steps (stopped early: eval/frechet (...))" in text
    assert "- Started from: scratch" in text
    assert f"- Clips: {SAMPLE_RATE} Hz, {LENGTH} samples (0.128 s), 1 channel\n" in text
    assert "- Classes: kick, snare, hihat, clap" in text
    assert "| kick | 3 | 6 | 9 |" in text and "| snare | 4 | 8 | 12 |" in text
    assert "| **all** | 7 | 14 | 21 |" in text
    assert _table(text, "### Licenses of the originals") == {
        "CC BY 4.0": "2", "CC0 1.0": "2", "CC BY-NC 3.0": "1", "Sampling+ 1.0": "1",
        "unknown": "1",
    }  # fmt: skip
    assert _table(text, "### Freesound generative-AI preferences") == {
        "(not stated)": "3", "no-additional-preferences": "2", NC_MODELS: "1", OPEN_MODELS: "1",
    }  # fmt: skip

    conditions = text.split("## Conditions", 1)[1].split("\n## ", 1)[0]
    # Credit: CC BY, CC BY-NC and Sampling+ all ask for it.
    assert "**Credit the authors.** 4 originals are under licenses that require" in conditions
    assert f"ship `{tmp_path / 'data' / 'ATTRIBUTION.md'}`" in conditions
    assert "**No commercial use of the model**" in conditions
    assert "2 originals are CC BY-NC or Sampling+" in conditions
    assert "1 original is from uploaders who allow only non-commercial models" in conditions
    assert "**Release it only as an open-source model.** 2 originals are" in conditions
    assert "**Unknown license.** 1 original is" in conditions
    assert "Opted out" not in conditions
    assert "Not evaluated yet: run `dvc repro evaluate`." in text


@pytest.mark.parametrize(
    ("originals", "present", "absent"),
    [
        ([("kick", CC0, "")], ["None: every original is CC0"], ["Credit", "commercial", "open"]),
        (
            [("kick", CC0, OPEN_MODELS)],
            ["**Release it only as an open-source model.** 1 original is"],
            ["Credit", "No commercial", "None:"],
        ),
        (
            [("kick", CC0, NC_MODELS)],
            ["**No commercial use of the model**", "only as an open-source model"],
            ["Credit", "CC BY-NC or Sampling+"],
        ),
        ([("kick", BY4, "")], ["**Credit the authors.** 1 original is"], ["commercial", "open"]),
        (
            [("kick", CC0, "no-gen-ai")],
            ["**Opted out.** 1 original is", "allow_ai_opt_out"],
            ["Credit", "commercial"],
        ),
    ],
)
def test_each_license_and_preference_brings_its_own_condition(
    tmp_path: Path, typed: Params, originals: list, present: list[str], absent: list[str]
) -> None:
    _checkpoint(tmp_path / "model.pt")
    text = card.render(tmp_path / "model.pt", typed, _manifest(tmp_path / "aug", originals), None)
    conditions = text.split("## Conditions", 1)[1].split("\n## ", 1)[0]
    for words in present:
        assert words in conditions, (words, conditions)
    for words in absent:
        assert words not in conditions, (words, conditions)


EVALUATION = {
    "overall": {"n": 32, "accuracy": 0.7812, "ceiling": 1.0, "frechet": 49.344,
                "frechet_floor": 12.5695, "kernel": 0.1283, "kernel_floor": -0.0034,
                "diversity_ratio": 0.6586, "near_copies": 1, "invalid": 3, "tone_db_max": 21.93,
                "tone_class": "hihat", "tone_hz": 2756.25, "tone_floor_db_max": 5.89},
    "classes": {
        "kick": {"n": 8, "accuracy": 1.0, "ceiling": 1.0, "frechet": 75.9184,
                 "frechet_floor": 8.1754, "kernel": 0.4786, "kernel_floor": 0.0009,
                 "diversity_ratio": 0.2165, "near_copies": 0, "invalid": 2},
        "snare": {"n": 8, "accuracy": 0.5, "ceiling": 0.875, "frechet": None,
                  "frechet_floor": None, "kernel": None, "kernel_floor": None,
                  "diversity_ratio": None, "near_copies": 1, "invalid": 1},
    },
    "settings": {"checkpoint": "models/model.pt", "checkpoint_sha256": "ad3400ee0849f5fc0",
                 "n_per_class": 8, "sampler": "dpmpp-2m", "steps": 25, "rho": 3.0, "guidance": 2.0,
                 "grid_shifts": 8, "grid_below": 0.02, "held_out": 40, "originals": 128},
}  # fmt: skip


def test_the_evaluation_goes_in_beside_its_floors_and_the_card_is_stable(
    tmp_path: Path, typed: Params
) -> None:
    ckpt = tmp_path / "model.pt"
    _checkpoint(ckpt)
    dataset = _manifest(tmp_path / "aug", MIXED)
    card.write(ckpt, typed, dataset, EVALUATION)
    path = tmp_path / "MODEL_CARD.md"
    text = path.read_text(encoding="utf-8")
    assert "Not evaluated yet" not in text
    assert "| class accuracy | 78% | 100% (classifier on held-out originals: ceiling) |" in text
    assert "| Fréchet distance | 49.3 | 12.6 (two real halves: floor) |" in text
    assert "| kernel distance | 0.128 | -0.0034 (two real halves: floor) |" in text
    assert "| near-copies of training sounds | 1 of 32 | |" in text
    assert "| invalid sounds | 3 of 32 | |" in text
    assert (
        "| strongest stray tone | 21.9 dB (hihat, 2,756 Hz) | 5.89 dB (two real halves) |" in text
    )
    assert "| kick | 100% (100%) | 75.9 (8.18) | 0.479 (0.0009) | 0.216 | 0 | 2 |" in text
    assert "| snare | 50% (88%) | – (–) | – (–) | – | 1 | 1 |" in text
    settings = "8 sounds per class, dpmpp-2m sampler, 25 steps (rho 3.0), guidance 2.0, 8 grid"
    assert settings + " shifts at noise levels up to 0.02;" in text
    assert "40 of 128 originals held out" in text and "sha256 ad3400ee0849" in text

    # The same inputs give the same bytes (no date, no time), and nothing is left beside it.
    before = path.read_bytes()
    card.write(ckpt, typed, dataset, EVALUATION)
    assert path.read_bytes() == before
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MODEL_CARD.md", "aug", "model.pt"]
