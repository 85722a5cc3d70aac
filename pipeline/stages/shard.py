"""shard: the final set as WebDataset tar shards, for training that streams its data.

Each clip becomes two members of a tar, ``<key>.wav`` (the file's bytes, unchanged) and
``<key>.json`` (its manifest row: label, source, license, attribution, variant, sha256 ...),
in the layout WebDataset reads (samples as consecutive members sharing a key). The clips are
shuffled once (``shard.seed``) so every shard mixes the classes, then cut into shards of
``shard.clips_per_shard``. ``manifest.csv`` lists every clip's row with its ``shard`` and
``key`` (what the model card reads of a set trained from shards); ``index.json`` lists the
shards with their clip counts, sizes and sha256, the classes and the clip format: a streaming
reader plans its epochs from it without opening a tar, and a resumed run can tell that the
data is the same.

The tars are reproducible: fixed member times, owners and modes, so the same set gives the
same bytes (and DVC sees no change). A file that cannot be read or no longer matches its
manifest's sha256 goes to the rejects list; the others are written.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import sys
import tarfile
import time
from pathlib import Path

from tqdm import tqdm

from core import params as core_params
from core.errors import ConfigError, Reject
from core.files import Row, fresh_dir, replace_dir, replacing, sha256_file, write_csv
from core.params import Params
from pipeline.manifests import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    REJECTS_NAME,
    display_path,
    read_manifest,
    reject_row,
    update_rejects,
)

INDEX = "index.json"
FORMAT = 1  # of index.json; a reader refuses another


def sample_key(row: Row) -> str:
    """The clip's WebDataset key: its path without the extension, dots made underscores
    (WebDataset splits a member name at the first dot of its base name)."""
    return Path(row["path"]).with_suffix("").as_posix().replace(".", "_")


def plan(rows: list[Row], per_shard: int, seed: int) -> list[list[Row]]:
    """The shards' rows: the set shuffled once by ``seed``, cut every ``per_shard`` clips."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    return [order[i : i + per_shard] for i in range(0, len(order), per_shard)]


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _clip_bytes(row: Row, in_dir: Path) -> bytes:
    """The clip's file, checked against the manifest's sha256 (a changed file is refused)."""
    try:
        data = (in_dir / row["path"]).read_bytes()
    except OSError as exc:
        raise Reject("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from None
    want = row.get("sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise Reject("changed", "the file's content is not what the manifest's sha256 says")
    return data


def write_shard(path: Path, rows: list[Row], in_dir: Path, bar: tqdm) -> tuple[list[Row], list]:
    """Write one tar; the rows written and the rejects (as (row, Reject) pairs)."""
    written, refused = [], []
    with replacing(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row in rows:
            try:
                data = _clip_bytes(row, in_dir)
            except Reject as rej:
                refused.append((row, rej))
            else:
                key = sample_key(row)
                meta = {k: v for k, v in row.items() if k != "path"}
                text = json.dumps(meta, sort_keys=True, ensure_ascii=False)
                _member(tar, f"{key}.json", text.encode("utf-8"))
                _member(tar, f"{key}{Path(row['path']).suffix}", data)
                written.append(row)
            bar.update(1)
    return written, refused


def index_of(shards: list[dict], rows: list[Row], params: Params) -> dict:
    """index.json's content: the format, the classes and the shards."""
    counts: dict[str, int] = {c: 0 for c in params.label.classes}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    return {
        "format": FORMAT,
        "clips": len(rows),
        "classes": counts,
        "sample_rate": params.audio.sample_rate,
        "channels": params.audio.channels,
        "length": round(params.audio.duration * params.audio.sample_rate),
        "shards": shards,
    }


def build(params: Params, in_dir: Path, out_dir: Path, progress: bool) -> tuple[int, int, list]:
    """Write every shard and the index into a fresh folder that replaces ``out_dir`` whole."""
    rows = read_manifest(in_dir / "manifest.csv")
    groups = plan(rows, params.shard.clips_per_shard, params.shard.seed)
    work = fresh_dir(out_dir)
    bar = tqdm(total=len(rows), desc="shard", unit="clip", disable=not progress or None)
    shards, written, refused = [], [], []
    try:
        for i, group in enumerate(groups):
            path = work / f"shard-{i:06d}.tar"
            ok, bad = write_shard(path, group, in_dir, bar)
            written += ok
            refused += bad
            if not ok:
                path.unlink()
                continue
            size, digest = path.stat().st_size, sha256_file(path)
            shards.append({"name": path.name, "clips": len(ok), "bytes": size, "sha256": digest})
        text = json.dumps(index_of(shards, written, params), indent=1) + "\n"
        with replacing(work / INDEX) as tmp:
            tmp.write_text(text, encoding="utf-8")
        write_csv(work / "manifest.csv", written, [*MANIFEST_COLUMNS, "shard", "key"])
        rejects = [reject_row("shard", display_path(in_dir / r["path"]), r, e) for r, e in refused]
        write_csv(work / "rejects.csv", rejects, REJECT_COLUMNS)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        bar.close()
    replace_dir(work, out_dir)
    update_rejects("shard", rejects, out_dir.parent / REJECTS_NAME)
    return len(written), len(shards), rejects


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.stages.shard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from params.yaml (shard, audio, label.classes); `dvc repro` runs "
        "it with the folders dvc.yaml gives it. Train from the shards with train.data: shards.",
    )
    parser.add_argument("input", type=Path, metavar="IN", help="the augmented set's folder")
    parser.add_argument("output", type=Path, metavar="OUT", help="the folder of the shards")
    parser.add_argument("--params", default="params.yaml", help="parameters file (params.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """0 written, 1 every clip refused, 2 bad settings or no input (one line), 130 Ctrl-C."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        params = core_params.load(args.params)
        n, n_shards, rejects = build(params, args.input, args.output, not args.no_progress)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"shard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shard: interrupted; {args.output}/ is as it was", file=sys.stderr)
        return 130
    took = time.perf_counter() - start
    clips = "clip" if n == 1 else "clips"
    print(
        f"shard: {n + len(rejects)} in, {n} {clips} in {n_shards} shard(s), "
        f"{len(rejects)} refused, {took:.1f} s",
        flush=True,
    )
    return 1 if rejects and not n else 0


if __name__ == "__main__":
    raise SystemExit(main())
