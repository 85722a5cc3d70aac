"""The model card, ``MODEL_CARD.md`` beside the checkpoint: what the model is, what it was
trained on, what that data allows, and how good its sounds are.

``training.train`` writes it at the end (not evaluated yet); ``training.evaluate`` rewrites it
with its figures. The conditions come from the training set's originals: their licenses
(CC BY family: credit the authors; CC BY-NC and Sampling+: no commercial use) and their
uploaders' Freesound generative-AI preferences (``noncommercial-open-source-models``: no
commercial use, and open-source release only; ``open-source-models``: open-source release
only). The text holds no date or time: the same model, data and evaluation give the same file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from core.files import write_text
from core.params import Params
from core.provenance import license_info
from pipeline.manifests import read_manifest
from training.checkpoints import load_checkpoint
from training.model import Denoiser, config_from_preset, count_parameters
from training.page_words import stretch_words

NAME = "MODEL_CARD.md"
ATTRIBUTION_LICENSES = ("cc-by", "cc-by-nc", "sampling+")  # credit the authors
NONCOMMERCIAL_LICENSES = ("cc-by-nc", "sampling+")
AI_NONCOMMERCIAL = "noncommercial-open-source-models"
AI_OPEN_SOURCE = "open-source-models"
AI_OPT_OUT = "no-gen-ai"
NOT_STATED = "(not stated)"


def path_for(checkpoint: Path) -> Path:
    return Path(checkpoint).with_name(NAME)


def write(
    checkpoint: Path,
    params: Params,
    dataset: Path,
    evaluation: dict[str, Any] | None,
    source: str | None = None,
) -> None:
    """Write ``MODEL_CARD.md`` beside ``checkpoint`` (atomically): the model, its training set
    ``dataset`` (a folder with its manifest.csv, or the manifest itself; ``source``: where it
    came from, when that is not the manifest's folder), the conditions and ``evaluation``
    (evaluation.json's content; None: not evaluated yet)."""
    text = render(checkpoint, params, dataset, evaluation, source)
    write_text(path_for(checkpoint), text)


def render(
    checkpoint: Path,
    params: Params,
    dataset: Path,
    evaluation: dict[str, Any] | None,
    source: str | None = None,
) -> str:
    """The card's Markdown."""
    manifest = Path(dataset) if Path(dataset).suffix == ".csv" else Path(dataset) / "manifest.csv"
    rows = read_manifest(manifest)
    originals = [r for r in rows if r.get("variant", "original") == "original"]
    attribution = manifest.parent.parent / "ATTRIBUTION.md"  # data/ATTRIBUTION.md
    parts = [
        "# Model card\n",
        "Drum one-shots from noise: a class-conditional waveform diffusion model in the style "
        "of Dance Diffusion. Written by `python -m training.train`, completed by "
        "`python -m training.evaluate`.\n",
        model_section(Path(checkpoint), params),
        data_section(source or str(manifest.parent), rows, originals),
        conditions_section(originals, attribution),
        evaluation_section(evaluation),
    ]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- the model


def model_section(checkpoint: Path, params: Params) -> str:
    """What the checkpoint holds: network, steps, where it started, clip format, classes."""
    ckpt = load_checkpoint(checkpoint)
    preset = ckpt.get("preset") or {}
    config = ckpt.get("config") or {}
    init = config.get("init_checkpoint", params.train.init_checkpoint)
    classes = list(ckpt.get("class_names") or [])
    sr, length, channels = ckpt["sample_rate"], ckpt["length"], ckpt["data_channels"]
    with torch.device("meta"):  # the shapes alone: no memory, no weights to load again
        net = Denoiser(config_from_preset(preset), classes, sr, length, channels)
    n_params = count_parameters(net)
    steps = f"{ckpt['step']} optimizer steps"
    if ckpt.get("stopped"):
        steps += f" ({ckpt['stopped']})"
    lines = [
        "## Model\n",
        f"- Checkpoint: `{checkpoint}` (sample with `python -m training.sample`)",
        f"- Network: {net.config.describe()}, preset `{preset.get('name', '?')}`, "
        f"{n_params:,} parameters",
        f"- Trained: {steps}",
        f"- Started from: {f'`{init}`' if init else 'scratch (random weights)'}",
        f"- Clips: {sr} Hz, {length} samples ({length / sr:.3f} s), "
        f"{channels} channel{'s' if channels != 1 else ''}",
        f"- Classes: {', '.join(classes) if classes else 'none (unconditional)'}",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the data


def data_section(dataset: str, rows: list[dict], originals: list[dict]) -> str:
    """Clips per class, the originals' licenses and generative-AI preferences."""
    classes = list(dict.fromkeys(r.get("label", "") for r in rows))
    orig = Counter(r.get("label", "") for r in originals)
    every = Counter(r.get("label", "") for r in rows)
    lines = [
        f"## Training set (`{dataset}`)\n",
        f"{len(originals)} originals and {len(rows) - len(originals)} variants the augment "
        "stage made of them.\n",
        "| class | originals | variants | clips |",
        "| --- | ---: | ---: | ---: |",
    ]
    for cls in classes:
        lines.append(f"| {cls} | {orig[cls]} | {every[cls] - orig[cls]} | {every[cls]} |")
    lines.append(f"| **all** | {len(originals)} | {len(rows) - len(originals)} | {len(rows)} |\n")
    licenses = Counter(license_info(r.get("license"))[1] for r in originals)
    lines += ["### Licenses of the originals\n", *_counts("license", licenses), ""]
    prefs = Counter(r.get("gen_ai_preference") or NOT_STATED for r in originals)
    lines += [
        "### Freesound generative-AI preferences of the originals\n",
        "What each uploader allows of generative-AI training; "
        f"{NOT_STATED}: none recorded (a sound from outside Freesound).\n",
        *_counts("preference", prefs),
    ]
    return "\n".join(lines) + "\n"


def _counts(what: str, counts: Counter) -> list[str]:
    """A two-column table, largest count first, then by name."""
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [f"| {what} | originals |", "| --- | ---: |", *(f"| {k} | {n} |" for k, n in rows)]


def conditions(originals: list[dict], attribution: Path) -> list[str]:
    """What the training set's licenses and preferences ask of whoever uses the model."""
    codes = Counter(license_info(r.get("license"))[0] for r in originals)
    prefs = Counter(r.get("gen_ai_preference", "") for r in originals)
    out = []
    credit = sum(codes[c] for c in ATTRIBUTION_LICENSES)
    if credit:
        out.append(
            f"**Credit the authors.** {_n(credit)} under licenses that require attribution "
            f"(CC BY, CC BY-NC, Sampling+): ship `{attribution}` with the model and with "
            "anything released that was made from it."
        )
    nc_lic = sum(codes[c] for c in NONCOMMERCIAL_LICENSES)
    nc_ai = prefs[AI_NONCOMMERCIAL]
    if nc_lic or nc_ai:
        why = [f"{_n(nc_lic)} CC BY-NC or Sampling+"] if nc_lic else []
        why += [f"{_n(nc_ai)} from uploaders who allow only non-commercial models"] if nc_ai else []
        out.append(f"**No commercial use of the model** or of its sounds: {' and '.join(why)}.")
    open_only = prefs[AI_OPEN_SOURCE] + nc_ai
    if open_only:
        out.append(
            f"**Release it only as an open-source model.** {_n(open_only)} from uploaders "
            "who allow generative-AI training only for open-source models: the model may be "
            "released only as an open-source model (weights public, under an open license), "
            "never as a closed one."
        )
    if prefs[AI_OPT_OUT]:
        out.append(
            f"**Opted out.** {_n(prefs[AI_OPT_OUT])} from uploaders who opted out of "
            "generative-AI training (`freesound.allow_ai_opt_out` is on): leave them out "
            "before you release the model."
        )
    if codes["unknown"]:
        out.append(
            f"**Unknown license.** {_n(codes['unknown'])} with no known license "
            "(`crawl.allow_unknown_license`): check their pages before you release the model."
        )
    return out


def conditions_section(originals: list[dict], attribution: Path) -> str:
    found = conditions(originals, attribution)
    if not found:
        found = ["None: every original is CC0 (public domain) and no uploader set a preference."]
    return "## Conditions\n\n" + "\n".join(f"- {c}" for c in found) + "\n"


def _n(count: int) -> str:
    return f"{count} original{' is' if count == 1 else 's are'}"


# ----------------------------------------------------------------------------- the figures


def evaluation_section(evaluation: dict[str, Any] | None) -> str:
    """The overall and per-class figures beside their real references, and how they were got."""
    if not evaluation:
        return "## Evaluation\n\nNot evaluated yet: run `dvc repro evaluate`.\n"
    o, settings = evaluation.get("overall", {}), evaluation.get("settings", {})
    n = o.get("n")
    lines = [
        "## Evaluation\n",
        "Judged by a small drum classifier fitted on the originals, against originals it never "
        "saw (`python -m training.evaluate`; reports/index.html to listen).\n",
        "| figure | model | real reference |",
        "| --- | ---: | ---: |",
        f"| class accuracy | {_pct(o.get('accuracy'))} | {_pct(o.get('ceiling'))} "
        "(classifier on held-out originals: ceiling) |",
        f"| Fréchet distance | {_f(o.get('frechet'))} | {_f(o.get('frechet_floor'))} "
        "(two real halves: floor) |",
        f"| kernel distance | {_f(o.get('kernel'))} | {_f(o.get('kernel_floor'))} "
        "(two real halves: floor) |",
        f"| diversity | {_f(o.get('diversity_ratio'))} × real | 1 × real; "
        f"{_f(o.get('diversity_seen'))} × for the originals the classifier was fitted on |",
        f"| strongest stray tone | {_f(o.get('tone_db_max'))} dB ({o.get('tone_class', '–')}, "
        f"{_hz(o.get('tone_hz'))}) | {_f(o.get('tone_floor_db_max'))} dB (two real halves) |",
        f"| near-copies of training sounds | {o.get('near_copies', '–')} of {n} | |",
        f"| invalid sounds | {o.get('invalid', '–')} of {n} | |",
        "",
        "| class | accuracy (ceiling) | Fréchet (floor) | kernel (floor) | diversity | "
        "near-copies | invalid |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cls, c in evaluation.get("classes", {}).items():
        lines.append(
            f"| {cls} | {_pct(c.get('accuracy'))} ({_pct(c.get('ceiling'))}) | "
            f"{_f(c.get('frechet'))} ({_f(c.get('frechet_floor'))}) | "
            f"{_f(c.get('kernel'))} ({_f(c.get('kernel_floor'))}) | "
            f"{_f(c.get('diversity_ratio'))} | {c.get('near_copies', '–')} | "
            f"{c.get('invalid', '–')} |"
        )
    lines += ["", _settings_line(settings)]
    return "\n".join(lines) + "\n"


def _settings_line(s: dict[str, Any]) -> str:
    sha = str(s.get("checkpoint_sha256", ""))
    return (
        f"Settings: {s.get('n_per_class', '?')} sounds per class, {s.get('sampler', '?')} "
        f"sampler, {s.get('steps', '?')} steps (rho {s.get('rho', 1)}), "
        f"guidance {s.get('guidance', '?')}, {s.get('grid_shifts', 1)} grid shifts at noise "
        f"levels up to {s.get('grid_below', 0)}{stretch_words(s)}; "
        f"{s.get('held_out', '?')} of {s.get('originals', '?')} originals held out; "
        f"checkpoint `{s.get('checkpoint', '?')}` (sha256 {sha[:12] or '?'})."
    )


def _f(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.3g}"


def _hz(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:,.0f} Hz"


def _pct(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.0%}"
