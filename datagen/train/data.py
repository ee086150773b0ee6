"""The trainer's data: sigma-set/1 or /2 shards -> seeded SIGMA-GEN examples -> batches by subject count.

    WebDataset(urls, resampled) -> sample shuffle -> decode (own handlers, no pickle) ->
    subject-count filter -> augment (augment.py) -> bucket_batches -> torch tensors

Only the fields FORMAT.md names are decoded, by the one decoder (datagen.final.decode: PIL for
images, log16 for /2 depth, `numpy.load(allow_pickle=False)` for /1 depth); webdataset's default decoders are never attached,
so a `.pyd` / `.pickle` member is skipped as bytes and never unpickled. A bad sample raises
BadSample, is counted by reason and skipped; a shard that cannot be read is counted and skipped
with a warning, the stream goes on (but a long run of unreadable shards with no sample between
them stops it: that is broken data, not bad luck).

Counting with DataLoader workers: each worker has its own DataStats; every batch carries its
worker's counts since that worker's previous batch (`batch["stats"]`), so summing those in the
main process (`DataStats.add`) gives exact totals whatever the number of workers.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds

from datagen.errors import UserError
from datagen.final.decode import BadSample, decode_sample
from datagen.models.hub import require
from datagen.schema import JSON_FIELD, READABLE_SCHEMAS
from datagen.train.augment import build_example, draw_augment, sample_rng

log = logging.getLogger(__name__)

class DataStats:
    """Counts of the stream: samples yielded, filtered by subject count, rejected by reason,
    unreadable shards. `drain()` hands over the counts since the last drain (see module doc)."""

    def __init__(self) -> None:
        self.totals: Counter = Counter()
        self._pending: Counter = Counter()
        self.shard_errors_in_row = 0

    def count(self, name: str, n: int = 1) -> None:
        self.totals[name] += n
        self._pending[name] += n

    def add(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.count(name, n)

    def drain(self) -> dict[str, int]:
        out, self._pending = dict(self._pending), Counter()
        return out

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.totals.items()))

    def __getitem__(self, name: str) -> int:
        return self.totals[name]


# ---------------------------------------------------------------- finding and checking shards


def list_shards(data: str | Path | list[str] | tuple[str, ...]) -> list[str]:
    """Shard URLs from a run directory (RUN/final/shard-*.tar), a directory of .tar shards, a
    glob, a brace pattern (`shards/shard-{000000..000009}.tar`, any URL webdataset opens), a
    single shard or a list. No match: an empty list (validate_data names the path)."""
    if isinstance(data, (list, tuple)):
        return [u for x in map(str, data) for u in (wds.shardlists.expand_urls(x) if "{" in x else [x])]
    s = str(data)
    if "{" in s:
        return list(wds.shardlists.expand_urls(s))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", s):  # a URL (http://, s3://, pipe:...): as given
        return [s]
    p = Path(s).expanduser()
    if p.is_dir():
        final = p / "final"
        if final.is_dir():
            return sorted(str(x) for x in final.glob("shard-*.tar"))
        # Leading dots are a writer's temporary files (shards.tmp_path_for): never read them.
        return sorted(str(x) for x in p.glob("*.tar") if not x.name.startswith("."))
    if glob.has_magic(s):
        return sorted(glob.glob(str(p)))
    return [str(p)] if p.exists() else []


def data_sources(cfg: Any, given: list[str] | None) -> list[Any]:
    """The data sources of a training run: `--data` (PATH or NAME=PATH, repeatable) replaces the
    config's `data:`; one of them must name something. Names must be unique."""
    from datagen.train.config import DataSource

    if given:
        sources = []
        for item in given:
            name, sep, path = item.partition("=")
            named = bool(sep) and re.fullmatch(r"[A-Za-z0-9_.-]+", name) is not None and "/" not in name
            sources.append(DataSource(path=path, name=name) if named else DataSource(path=item))
    else:
        sources = list(cfg.data)
    if not sources:
        raise UserError("no training data: give --data PATH, or data: [{path: ...}] in the config")
    labels = [s.label for s in sources]
    dup = next((x for x in labels if labels.count(x) > 1), None)
    if dup is not None:
        raise UserError(f"--data: two sources are called {dup!r}; name them: --data NAME=PATH")
    return sources


def _why(exn: BaseException) -> str:
    # webdataset appends (stream, url) to an error's args: the message is the first arg, or an
    # OSError's strerror (its first arg is the errno).
    return f"{exn.__class__.__name__}: {getattr(exn, 'strerror', None) or (exn.args[0] if exn.args else '')}"


def _first_sample(url: str) -> tuple[dict | None, BaseException | None]:
    errors: list[BaseException] = []

    def stop(exn: BaseException) -> bool:
        errors.append(exn)
        return False

    ds = wds.WebDataset([url], shardshuffle=False, nodesplitter=None, workersplitter=None, handler=stop, empty_check=False)
    for raw in ds:
        return raw, None
    return None, errors[0] if errors else None


def validate_data(data: str | Path | list[str]) -> list[str]:
    """Before training: the data exists, is sigma-set/1 or /2, and holds no evaluation run's
    samples (the first sample of every shard: a run is one split). Returns the shard URLs;
    raises UserError in one line otherwise."""
    urls = list_shards(data)
    where = data if isinstance(data, (str, Path)) else ", ".join(map(str, data)) or "[]"
    if not urls:
        raise UserError(f"no shards at {where}: expected a run directory (RUN/final/shard-*.tar), a directory of .tar shards, a glob or a brace pattern")  # fmt: skip
    problems, readable = [], 0
    for url in urls:
        raw, error = _first_sample(url)
        if raw is None:
            problems.append(f"{url}: {f'unreadable ({_why(error)})' if error else 'no samples'}")
            log.warning("validate_data: %s", problems[-1])
            continue
        try:
            meta = json.loads(raw[JSON_FIELD]) if JSON_FIELD in raw else None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{url}: sample {raw.get('__key__')} has bad json ({e}); not a sigma-set shard") from None
        found = meta.get("schema") if isinstance(meta, dict) else None
        if found not in READABLE_SCHEMAS:
            raise UserError(f"{url}: schema {found!r}, expected one of {', '.join(READABLE_SCHEMAS)}")
        generation = meta.get("generation")
        if isinstance(generation, dict) and generation.get("split") == "eval":
            raise UserError(f"{url}: sample {raw.get('__key__')} is from an evaluation run (generation.split: eval); "
                            "held-out data never trains: give datagen train a training run's shards")  # fmt: skip
        readable += 1
    if readable:
        return urls
    raise UserError(f"no readable shard at {where} ({len(urls)} tried; first: {problems[0]})")


# ---------------------------------------------------------------- the stream


def make_filter(min_subjects: int, max_subjects: int) -> Callable[[dict], bool]:
    """A curriculum stage's subject-count filter over decoded samples (bounds inclusive)."""
    if min_subjects > max_subjects:
        raise ValueError(f"min_subjects {min_subjects} > max_subjects {max_subjects}")

    def keep(decoded: dict) -> bool:
        return min_subjects <= len(decoded["json"]["subjects"]) <= max_subjects

    return keep


class ShardErrorHandler:
    """webdataset's `handler`: count an unreadable shard (or a broken tar member), warn, go on.

    After `max_in_row` such errors with no good sample between them, raise: a resampled stream
    over data that is all broken would otherwise spin forever."""

    def __init__(self, stats: DataStats, max_in_row: int):
        self.stats, self.max_in_row = stats, max_in_row

    def __call__(self, exn: BaseException) -> bool:
        self.stats.count("shard_errors")
        self.stats.shard_errors_in_row += 1
        # webdataset appends the url to the args of a tar error; an opener's OSError has a filename.
        url = getattr(exn, "filename", None) or next((a for a in reversed(exn.args) if isinstance(a, str)), "?")
        log.warning("skipping unreadable shard data %s (%s)", url, _why(exn))
        if self.stats.shard_errors_in_row >= self.max_in_row:
            raise UserError(f"{self.stats.shard_errors_in_row} unreadable shards in a row and no sample between them (last: {url}); check the data")  # fmt: skip
        return True


def decoded_samples(raw: Iterable[dict], stats: DataStats) -> Iterator[dict]:
    """Raw webdataset samples -> decoded ones; bad samples counted as rejected:<reason>."""
    for sample in raw:
        key = sample.get("__key__", "?")
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        try:
            decoded = decode_sample(members, key)
        except BadSample as e:
            stats.count(f"rejected:{e.reason}")
            log.warning("skipping sample %s of %s: %s", key, sample.get("__url__", "?"), e)
            continue
        stats.shard_errors_in_row = 0
        yield decoded


def shard_stream(
    urls: list[str], cfg: Any, stats: DataStats, keep: Callable[[dict], bool] | None = None, epoch: int = 0,
    max_shard_errors_in_row: int | None = None, salt: int = 0,
) -> Any:  # fmt: skip
    """The endless, seeded stream of decoded samples of one data source that pass `keep`.
    `salt` separates the seeds of several sources mixed in one run (0: the single-source seeds)."""
    handler = ShardErrorHandler(stats, max_shard_errors_in_row or max(100, 10 * len(urls)))
    ds = wds.WebDataset(
        urls, resampled=True, shardshuffle=False, handler=handler, empty_check=False,
        nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, seed=cfg.seed,
    )  # fmt: skip
    # WebDataset's resampler seeds itself from the clock and pid unless told to be
    # deterministic; then it uses (rank, worker, its epoch, seed).
    resampler = ds.pipeline[0]
    if not isinstance(resampler, wds.ResampledShards):
        raise TypeError(f"expected webdataset's ResampledShards first in the pipeline, got {type(resampler).__name__}")
    seed = int(cfg.seed) * 1_000_003 + int(epoch) + 7919 * int(salt)
    resampler.deterministic, resampler.seed = True, seed
    ds = ds.shuffle(cfg.shuffle_buffer, initial=cfg.shuffle_buffer, seed=seed)

    def decode(src: Iterable[dict]) -> Iterator[dict]:
        return decoded_samples(src, stats)

    def select(src: Iterable[dict]) -> Iterator[dict]:
        for d in src:
            if keep is None or keep(d):
                yield d
            else:
                stats.count("filtered")

    return ds.compose(decode, select)


def augmenter(cfg: Any, stats: DataStats, epoch: int = 0) -> Callable[[Iterable[dict]], Iterator[dict]]:
    """The pipeline stage that turns decoded samples into seeded SIGMA-GEN examples."""

    def augment(src: Iterable[dict]) -> Iterator[dict]:
        visits: Counter = Counter()
        reader = wds.utils.pytorch_worker_seed()  # rank * 1000 + worker, known only in the worker
        for d in src:
            rng = sample_rng(cfg.seed, epoch, d["key"], visits[d["key"]], reader)
            visits[d["key"]] += 1
            stats.count("samples")
            yield build_example(d, draw_augment(rng, cfg.augment), cfg.resolution, cfg.identity_size)

    return augment


def training_examples(
    urls: list[str],
    cfg: Any,
    stats: DataStats,
    keep: Callable[[dict], bool] | None = None,
    epoch: int = 0,
    max_shard_errors_in_row: int | None = None,
) -> Any:
    """The endless, seeded stream of training examples of one source (a webdataset pipeline, an
    IterableDataset).

    cfg: a TrainConfig (seed, resolution, identity_size, shuffle_buffer, augment). keep: a
    make_filter(...) for the curriculum stage. epoch: mixed into every seed; the trainer passes
    the step the stream starts at, so a resumed run gets a fresh, still reproducible stream.
    Reproducible for a fixed (seed, epoch, node and worker layout).
    """
    stream = shard_stream(urls, cfg, stats, keep, epoch, max_shard_errors_in_row)
    return stream.compose(augmenter(cfg, stats, epoch))


# ---------------------------------------------------------------- batches


def collate(examples: list[dict]) -> dict:
    """Examples of one subject count -> stacked torch tensors (the fields of step.Batch) + keys."""
    torch = require("torch", "train")
    heights = {e["identities"].shape for e in examples}
    if len(heights) != 1:
        raise ValueError(f"a batch mixes identity stacks of shapes {sorted(heights)}; batch by subject count")
    return {
        "target": torch.from_numpy(np.stack([e["target"] for e in examples])),
        "control": torch.from_numpy(np.stack([e["control"] for e in examples])),
        "identities": torch.from_numpy(np.stack([e["identities"] for e in examples])),
        "prompts": [e["prompt"] for e in examples],
        "n_subjects": examples[0]["n_subjects"],
        "keys": [e["key"] for e in examples],
    }


def bucket_batches(stream: Iterable[dict], batch_size: int, stats: DataStats | None = None) -> Iterator[dict]:
    """Batches of one subject count each (I_S heights differ between counts): one pending list
    per count, a batch yielded when its list fills. With `stats`, each batch carries the counts
    since the previous batch under "stats"."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: dict[int, list[dict]] = {}
    for ex in stream:
        bucket = pending.setdefault(ex["n_subjects"], [])
        bucket.append(ex)
        if len(bucket) == batch_size:
            batch = collate(bucket)
            pending[ex["n_subjects"]] = []
            if stats is not None:
                batch["stats"] = stats.drain()
            yield batch


def training_batches(
    urls: list[str], cfg: Any, stage: Any | None = None, epoch: int = 0, stats: DataStats | None = None,
    examples: Callable[..., Any] | None = None,
) -> Any:  # fmt: skip
    """The batches of one curriculum stage (`stage`: min_subjects, max_subjects), batched inside
    the pipeline so each DataLoader worker buckets its own samples. Wrap in
    `webdataset.WebLoader(..., batch_size=None, num_workers=cfg.loader_workers)`.
    examples: what makes the example stream from `urls` (default training_examples;
    datagen.train.mix.mixed_examples draws from several sources)."""
    stats = stats if stats is not None else DataStats()
    keep = make_filter(stage.min_subjects, stage.max_subjects) if stage is not None else None
    stream = (examples or training_examples)(urls, cfg, stats, keep=keep, epoch=epoch)

    def batches(src: Iterable[dict]) -> Iterator[dict]:
        return bucket_batches(src, cfg.batch_size, stats)

    return stream.compose(batches)
