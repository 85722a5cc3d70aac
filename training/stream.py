"""The training set streamed from WebDataset shards (``train.data: shards``).

The in-memory set (:mod:`training.data`) holds every clip; a set of a million clips does not
fit. Here a process holds at most two shards at a time (the one it reads and the next, fetched
in the background), so memory stays flat whatever the set's size, and the shards may lie in a
folder or behind a URL: ``http(s)://`` through WebDataset's ``gopen`` (curl), ``s3://``,
``gs://`` and the rest through fsspec (with s3fs or gcsfs installed).

Batches are a pure function of their position, as in the in-memory set, so a resumed run reads
exactly what the interrupted one would have read. Epoch ``e`` shuffles the shard list (the same
order on every rank, from ``seed`` and ``e``); rank ``r`` of ``w`` reads shards ``r, r+w, ...``
of it, each shard's clips in an order drawn from the seed, the epoch and the shard. So with the
shards of equal size (the ``shard`` stage cuts them so, the last excepted) every clip is seen
once per epoch across the ranks. Positions map to (epoch, shard, clip) through ``index.json``'s
counts: resuming at step ``s`` opens only the shard that step is in.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlparse

import numpy as np
import soundfile as sf
import torch

from pipeline.stages.shard import FORMAT, INDEX
from training.data import DataError

Shard = tuple[np.ndarray, np.ndarray, list[str]]  # audio, labels, keys


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def open_url(url: str) -> IO[bytes]:
    """A readable stream of a local path or a URL."""
    scheme = urlparse(url).scheme
    if scheme in ("", "file"):
        return open(url.removeprefix("file://"), "rb")  # noqa: SIM115 - the caller closes it
    if scheme in ("http", "https"):
        from webdataset.gopen import gopen

        return gopen(url, "rb")
    import fsspec

    return fsspec.open(url, "rb").open()


def read_bytes(url: str) -> bytes:
    """The whole object at ``url``; a failure to fetch it is a :class:`DataError`."""
    try:
        with open_url(url) as fh:
            data = fh.read()
    except (OSError, ValueError, ImportError) as exc:
        curl = re.search(r"\bexit (\d+)", str(exc))  # webdataset's curl pipe: its exit status
        why = f"curl exit {curl.group(1)}" if curl and "curl" in str(exc) else str(exc)
        raise DataError(f"cannot read {url}: {why}") from None
    if not data:  # curl writes nothing on a 404 or a refused connection
        raise DataError(f"cannot read {url}: empty or not found")
    return data


@dataclass(frozen=True)
class ShardIndex:
    """``index.json`` of a shard folder: the shards, their clip counts and the clip format."""

    base: str
    names: list[str]
    counts: list[int]
    digests: list[str]
    classes: dict[str, int]
    sample_rate: int
    channels: int
    length: int
    fingerprint: str  # the set's identity: the index lists every shard's sha256

    @property
    def total(self) -> int:
        return sum(self.counts)

    @classmethod
    def read(cls, base: str) -> ShardIndex:
        raw = read_bytes(_join(base, INDEX))
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, not {FORMAT}")
            shards = doc["shards"]
            return cls(
                base=base,
                names=[s["name"] for s in shards],
                counts=[int(s["clips"]) for s in shards],
                digests=[s["sha256"] for s in shards],
                classes={str(k): int(v) for k, v in doc["classes"].items()},
                sample_rate=int(doc["sample_rate"]),
                channels=int(doc["channels"]),
                length=int(doc["length"]),
                fingerprint=hashlib.sha256(raw).hexdigest()[:16],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{_join(base, INDEX)} is not a shard index ({exc})") from None

    def check(self, class_names: Sequence[str], sample_rate: int, channels: int, length: int):
        """Refuse a set the model cannot use, before any shard is read."""
        fmt = (self.sample_rate, self.channels, self.length)
        if fmt != (sample_rate, channels, length):
            raise DataError(
                f"{self.base}: clips of {fmt[0]} Hz, {fmt[1]} channel(s), {fmt[2]} samples, "
                f"not {sample_rate} Hz, {channels}, {length}: rebuild the shards (dvc repro)"
            )
        unknown = [c for c, n in self.classes.items() if n and c not in class_names]
        if unknown:
            raise DataError(f"{self.base}: classes {', '.join(unknown)} not in label.classes")
        if not self.total:
            raise DataError(f"{self.base} lists no clips: nothing to train on")


def decode_shard(data: bytes, index: ShardIndex, i: int, class_names: Sequence[str]):
    """A shard's clips as (audio float32 [n, channels, length], labels int64 [n], keys), in
    the tar's order; the shard must be the one the index describes (its sha256)."""
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    name = index.names[i]
    if hashlib.sha256(data).hexdigest() != index.digests[i]:
        raise DataError(f"{name}: its content is not what {INDEX} says: rebuild the shards")
    lookup = {c: k for k, c in enumerate(class_names)}
    audio = np.empty((index.counts[i], index.channels, index.length), dtype=np.float32)
    labels = np.empty(index.counts[i], dtype=np.int64)
    keys: list[str] = []
    n = 0
    members = ({**m, "__url__": name} for m in tar_file_iterator(io.BytesIO(data)))
    for sample in group_by_keys(members):
        wav = next((v for k, v in sample.items() if k in ("wav", "flac")), None)
        if wav is None or "json" not in sample or n >= len(labels):
            raise DataError(f"{name}: sample {sample.get('__key__')} is not a clip and its row")
        label = json.loads(sample["json"]).get("label")
        clip, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        if label not in lookup or sr != index.sample_rate or clip.T.shape != audio.shape[1:]:
            raise DataError(f"{name}: {sample['__key__']} does not fit the index")
        audio[n], labels[n] = clip.T, lookup[label]
        keys.append(sample["__key__"])
        n += 1
    if n != len(labels):
        raise DataError(f"{name}: {n} clips, the index says {len(labels)}")
    return audio, labels, keys


class ShardStream:
    """One rank's batches from the shards, a pure function of the micro-batch number."""

    def __init__(
        self,
        index: ShardIndex,
        class_names: Sequence[str],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size > len(index.names):
            raise DataError(
                f"{len(index.names)} shard(s) cannot be shared among {world_size} processes: "
                "lower shard.clips_per_shard"
            )
        self.index, self.class_names = index, list(class_names)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._epochs: list[tuple[list[int], np.ndarray]] = []  # shards and their clip starts
        self._begins = [0]  # the position each planned epoch begins at (one more: the end)
        self._cache: dict[tuple[int, int], Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shards")

    # -- the plan: which shards an epoch holds for this rank, where each starts
    def _plan(self, epoch: int) -> tuple[list[int], np.ndarray]:
        while len(self._epochs) <= epoch:
            e = len(self._epochs)
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
            order = torch.randperm(len(self.index.names), generator=gen).tolist()
            mine = order[self.rank :: self.world_size]
            starts = np.cumsum([0] + [self.index.counts[s] for s in mine])
            self._epochs.append((mine, starts))
            self._begins.append(self._begins[-1] + int(starts[-1]))
        return self._epochs[epoch]

    def locate(self, position: int) -> tuple[int, int, int]:
        """(epoch, place in the epoch's shard list, clip within the shard) of a position."""
        while self._begins[-1] <= position:  # plan the epochs up to the position, once
            self._plan(len(self._epochs))
        epoch = bisect.bisect_right(self._begins, position) - 1
        offset = position - self._begins[epoch]
        starts = self._epochs[epoch][1]
        j = int(np.searchsorted(starts, offset, side="right")) - 1
        return epoch, j, offset - int(starts[j])

    # -- the shards: one read, one fetched ahead, none else
    def _load(self, epoch: int, j: int) -> Shard:
        shard = self._plan(epoch)[0][j]
        data = read_bytes(_join(self.index.base, self.index.names[shard]))
        audio, labels, keys = decode_shard(data, self.index, shard, self.class_names)
        del data
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 100_003 + shard)
        order = torch.randperm(len(labels), generator=gen).numpy()
        return audio[order], labels[order], [keys[i] for i in order]

    def _shard(self, epoch: int, j: int) -> Shard:
        key = (epoch, j)
        if key not in self._cache:
            self._cache[key] = self._pool.submit(self._load, epoch, j)
        for old in [k for k in self._cache if k < key]:
            del self._cache[old]
        nxt = (epoch, j + 1) if j + 1 < len(self._plan(epoch)[0]) else (epoch + 1, 0)
        if nxt not in self._cache:
            self._cache[nxt] = self._pool.submit(self._load, *nxt)
        return self._cache[key].result()

    @property
    def total(self) -> int:
        return self.index.total

    @property
    def fingerprint(self) -> str:
        return self.index.fingerprint

    def class_counts(self) -> dict[str, int]:
        """Of the whole set (the index's counts)."""
        return {c: self.index.classes.get(c, 0) for c in self.class_names}

    def _clips(self, k: int) -> list[tuple[Shard, int]]:
        out = []
        for pos in range(k * self.batch_size, (k + 1) * self.batch_size):
            epoch, j, c = self.locate(pos)
            out.append((self._shard(epoch, j), c))
        return out

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Micro-batch ``k``: audio float32 [batch, channels, length], labels int64 [batch]."""
        picked = self._clips(k)
        audio = np.stack([shard[0][c] for shard, c in picked])
        labels = np.asarray([shard[1][c] for shard, c in picked])
        return torch.from_numpy(audio), torch.from_numpy(labels)

    def batch_keys(self, k: int) -> list[str]:
        """The clips of micro-batch ``k`` by their keys in the shards (which clips a rank read)."""
        return [shard[2][c] for shard, c in self._clips(k)]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._cache.clear()
