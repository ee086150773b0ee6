"""The trainer's data pipeline on real shards from the procedural pipeline (built once per module)."""

from __future__ import annotations

import builtins
import io
import itertools
import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from helpers import run_cli

from datagen.recipe.conditioning import routing_maps
from datagen.errors import UserError
from datagen.recipe.geometry import mask_box_2d
from datagen.schema import routing_intensity
from datagen.store.shards import read_tar, tar_bytes
from datagen.train import data as D
from datagen.train.augment import (
    TEMPLATES,
    AugmentDraw,
    build_example,
    draw_augment,
    prompt_text,
    sample_rng,
)
from datagen.train.config import AugmentConfig, CurriculumStage, TrainConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-data") / "run"
    done = run_cli(
        "run", "--config", str(REPO / "configs" / "demo.yaml"), "--set", "run.num_samples=8", "--set", "run.shard_size=4",
        "--set", "run.width=128", "--set", "run.height=128", "--executor", "local", "--out", str(out), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((out / "final").glob("shard-*.tar"))) == 2
    return out


@pytest.fixture(scope="module")
def samples(run_dir: Path) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for shard in sorted((run_dir / "final").glob("shard-*.tar")):
        out.update(read_tar(shard))
    return out


def cfg(**kw) -> TrainConfig:
    base = {
        "seed": 0,
        "resolution": 64,
        "identity_size": 32,
        "batch_size": 2,
        "shuffle_buffer": 8,
    }
    return TrainConfig(**{**base, **kw})


def rewrite(shard: Path, out: Path, change) -> Path:
    """A copy of `shard` with each (name, bytes) member passed through change() (None: dropped)."""
    members = []
    for key, fields in read_tar(shard).items():
        for field, data in sorted(fields.items()):
            kept = change(f"{key}.{field}", data)
            if kept is not None:
                members.append((f"{key}.{field}", kept))
    out.write_bytes(tar_bytes(members))
    return out


def examples(urls, config, stats, n, **kw) -> list[dict]:
    return list(itertools.islice(D.training_examples(urls, config, stats, **kw), n))


# ---------------------------------------------------------------- decoding


def test_decode_round_trip(samples):
    key, members = min(samples.items())
    d = D.decode_sample(members, key)
    n = len(d["json"]["subjects"])
    assert d["image"].dtype == np.uint8 and d["image"].shape == (128, 128, 3)
    assert d["masks"].dtype == bool and d["masks"].shape == (n, 128, 128)
    assert d["depth"].dtype == np.float32 and d["depth"].shape == (128, 128)
    assert d["identities"].dtype == np.uint8 and d["identities"].shape == (
        n,
        256,
        256,
        3,
    )  # demo: identity_size 256
    for mask, subject in zip(d["masks"], d["json"]["subjects"]):
        assert list(mask_box_2d(mask)) == subject["box_2d"]  # mask i really is subject i's mask
    assert np.isfinite(d["depth"][d["masks"].any(axis=0)]).all()

    # At the native size, the masks-mode control is the routing maps of the masks, exactly.
    draw = AugmentDraw(mode="masks", drop_channel=None, dilate_px=0, aspect=1.0, template=0)
    ex = build_example(d, draw, resolution=128, identity_size=32)
    assert ex["target"].dtype == np.float32 and ex["target"].shape == (3, 128, 128)
    assert -1.0 <= ex["target"].min() < ex["target"].max() <= 1.0
    control = np.round((ex["control"] + 1.0) * 127.5).astype(np.uint8)
    asc, dsc = routing_maps(list(d["masks"]))
    assert np.array_equal(control[0], asc) and np.array_equal(control[1], dsc)
    assert set(np.unique(control[0])) <= {0} | {routing_intensity(i) for i in range(n)}
    assert (control[2][d["masks"].any(axis=0)] > 0).all() and (control[2][~d["masks"].any(axis=0)] == 0).all()
    assert ex["identities"].shape == (3, n * 32, 32)
    assert ex["prompt"] == "Place these subjects in " + d["json"]["prompt"]["background"]
    assert ex["n_subjects"] == n


def test_decode_resized_control_keeps_routing_values(samples):
    key, members = sorted(samples.items())[1]
    d = D.decode_sample(members, key)
    n = len(d["json"]["subjects"])
    for mode in ("masks", "boxes3d", "boxes2d"):
        ex = build_example(d, AugmentDraw(mode, None, 2, 1.01, 1), resolution=64, identity_size=32)
        control = np.round((ex["control"] + 1.0) * 127.5).astype(np.uint8)
        assert control.shape == (3, 64, 64)
        assert set(np.unique(control[:2])) <= {0} | {routing_intensity(i) for i in range(n)}, mode
        assert control[0].any(), mode
        assert (control[2] == 0).all() == (mode == "boxes2d"), mode


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Reducer(marker))


@pytest.mark.parametrize(
    "reason, change",
    [
        ("json", lambda f, b: b"{not json" if f == "json" else b),
        (
            "json",
            lambda f, b: json.dumps({**json.loads(b), "key": "000009_000009"}).encode() if f == "json" else b,
        ),
        (
            "schema",
            lambda f, b: json.dumps({**json.loads(b), "schema": "sigma-set/9"}).encode() if f == "json" else b,
        ),
        ("count", lambda f, b: None if f == "mask_01.png" else b),
        ("count", lambda f, b: None if f == "id_00.png" else b),
        ("image", lambda f, b: b[: len(b) // 2] if f == "png" else b),
        ("image", lambda f, b: b"garbage" if f == "mask_00.png" else b),
        ("missing", lambda f, b: None if f == "depth.npy" else b),
        (
            "shape",
            lambda f, b: _npy(np.zeros((64, 64), np.float32)) if f == "depth.npy" else b,
        ),
        (
            "shape",
            lambda f, b: _npy(np.zeros((128, 128), np.int32)) if f == "depth.npy" else b,
        ),
    ],
)
def test_decode_rejects_bad_samples(samples, reason, change):
    key, members = min(samples.items())
    bad = {f: change(f, b) for f, b in members.items()}
    with pytest.raises(D.BadSample) as e:
        D.decode_sample({f: b for f, b in bad.items() if b is not None}, key)
    assert e.value.reason == reason, str(e.value)


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_pickled_members_are_never_unpickled(samples, run_dir, tmp_path):
    marker = tmp_path / "unpickled"
    payload = _evil_pickle(marker)
    pickle.loads(payload)  # the payload works: unpickling it does create the marker
    assert marker.exists()
    marker.unlink()

    members = []
    for i, (key, fields) in enumerate(sorted(samples.items())[:4]):
        for field, data in sorted(fields.items()):
            if i == 0 and field == "depth.npy":  # sample 0's depth: an object array holding the payload
                data = _npy(np.array([_Reducer(marker)], dtype=object), allow_pickle=True)
            members.append((f"{key}.{field}", data))
        members += [(f"{key}.pyd", payload), (f"{key}.pickle", payload)]
    shard = tmp_path / "evil.tar"
    shard.write_bytes(tar_bytes(members))

    assert D.validate_data(str(shard)) == [str(shard)]
    stats = D.DataStats()
    got = examples([str(shard)], cfg(), stats, 12)
    assert {e["key"] for e in got} == {k for k, _ in sorted(samples.items())[1:4]}
    assert stats["rejected:depth"] >= 1
    assert not marker.exists()


class _Reducer:
    """Unpickling it creates `marker` (module level so numpy can pickle it into a .npy)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


# ---------------------------------------------------------------- the stream and batches


def test_stream_batches_by_subject_count(run_dir, samples):
    urls = D.validate_data(run_dir)
    assert len(urls) == 2
    counts = {k: len(json.loads(m["json"])["subjects"]) for k, m in samples.items()}
    stats = D.DataStats()
    totals = D.DataStats()
    batches = list(itertools.islice(D.training_batches(urls, cfg(), stats=stats), 6))
    for b in batches:
        n = b["n_subjects"]
        assert b["target"].shape == (2, 3, 64, 64) and b["control"].shape == (
            2,
            3,
            64,
            64,
        )
        assert b["identities"].shape == (2, 3, n * 32, 32)
        assert [counts[k] for k in b["keys"]] == [n, n]
        assert len(b["prompts"]) == 2 and all(p.startswith("Place these subjects") for p in b["prompts"])
        assert -1.0 <= float(b["target"].min()) and float(b["target"].max()) <= 1.0
        totals.add(b["stats"])
    assert len({b["n_subjects"] for b in batches}) > 1  # the data has several counts: several buckets
    # Counts per batch add up to the stream's own: nothing double counted or lost in draining.
    assert totals["samples"] >= 12 and totals["samples"] == stats["samples"] - sum(stats.drain().values())


def test_loader_workers_reproducible(run_dir):
    """Two DataLoader workers: the same batches on a second run, and the per-batch counts add up."""
    urls = D.list_shards(run_dir)

    def run() -> tuple[list, D.DataStats]:
        loader = wds.WebLoader(D.training_batches(urls, cfg()), batch_size=None, num_workers=2)
        totals = D.DataStats()
        keys = []
        for b in itertools.islice(loader, 8):
            totals.add(b["stats"])
            keys.append((tuple(b["keys"]), b["prompts"][0], b["n_subjects"]))
        return keys, totals

    (a, totals), (b, _) = run(), run()
    assert a == b
    assert totals["samples"] >= 16


def test_curriculum_filter(run_dir, samples):
    stats = D.DataStats()
    got = examples(D.list_shards(run_dir), cfg(), stats, 20, keep=D.make_filter(4, 5))
    assert {e["n_subjects"] for e in got} <= {4, 5}
    assert stats["filtered"] > 0 and stats["samples"] == 20
    with pytest.raises(ValueError):
        D.make_filter(5, 4)
    stage = CurriculumStage(steps=10, min_subjects=6, max_subjects=10)
    batch = next(iter(D.training_batches(D.list_shards(run_dir), cfg(batch_size=1), stage)))
    assert 6 <= batch["n_subjects"] <= 10


def test_augmentation_is_seeded(run_dir):
    urls = D.list_shards(run_dir)

    def run(seed: int, epoch: int = 0) -> list[dict]:
        return examples(urls, cfg(seed=seed), D.DataStats(), 16, epoch=epoch)

    a, b, c = run(0), run(0), run(1)
    assert [e["key"] for e in a] == [e["key"] for e in b]
    assert [e["augment"] for e in a] == [e["augment"] for e in b]
    assert all(np.array_equal(x["control"], y["control"]) and np.array_equal(x["target"], y["target"]) for x, y in zip(a, b))
    assert [(e["key"], e["augment"]) for e in a] != [(e["key"], e["augment"]) for e in c]
    assert [(e["key"], e["augment"]) for e in a] != [(e["key"], e["augment"]) for e in run(0, epoch=1)]
    # The draws depend on (seed, epoch, key, visit) only, not on the stream's order.
    aug = AugmentConfig()
    assert draw_augment(sample_rng(0, 0, "000000_000001"), aug) == draw_augment(sample_rng(0, 0, "000000_000001"), aug)
    draws = {draw_augment(sample_rng(0, 0, "000000_000001", v), aug) for v in range(8)}
    assert len(draws) > 1  # a repeat visit draws afresh


def _draws(n: int, aug: AugmentConfig, seed: int = 0) -> list[AugmentDraw]:
    return [draw_augment(sample_rng(seed, 0, f"{i // 1000:06d}_{i:06d}"), aug) for i in range(n)]


def test_prompt_templates_equally_likely():
    draws = _draws(4000, AugmentConfig())
    counts = Counter(d.template for d in draws)
    assert counts == Counter({0: 1971, 1: 2029})  # seeded: exact
    meta = {
        "prompt": {
            "background": "a sandy beach",
            "full": "A photo of a cat on a sandy beach.",
        }
    }
    assert prompt_text(meta, 0) == "Place these subjects in a sandy beach"
    assert prompt_text(meta, 1) == "Place these subjects to compose: A photo of a cat on a sandy beach."
    assert len(TEMPLATES) == 2


def test_channel_drop_and_modes():
    draws = _draws(4000, AugmentConfig())
    dropped = Counter(d.drop_channel for d in draws)
    assert sum(v for k, v in dropped.items() if k is not None) == 432  # seeded: exact, rate 0.108
    assert all(100 <= dropped[c] <= 170 for c in (0, 1, 2))
    modes = Counter(d.mode for d in draws)
    assert set(modes) == {"masks", "boxes3d", "boxes2d"} and all(1200 <= v <= 1470 for v in modes.values())
    assert {d.dilate_px for d in draws} == set(range(5))  # max_dilate_px 4 by default
    assert all(0.99 <= d.aspect <= 1.01 for d in draws) and len({d.aspect for d in draws}) > 100
    none = _draws(
        500,
        AugmentConfig(
            channel_drop_p=0.0,
            max_dilate_px=0,
            aspect_jitter=0.0,
            structure_modes=["boxes2d"],
        ),
    )
    assert all(d.drop_channel is None and d.dilate_px == 0 and d.aspect == 1.0 and d.mode == "boxes2d" for d in none)


# ---------------------------------------------------------------- broken data


def test_corrupt_sample_is_skipped_and_counted(run_dir, tmp_path):
    shard = min((run_dir / "final").glob("shard-*.tar"))
    bad_key = "000000_000001"
    broken = rewrite(
        shard,
        tmp_path / "broken.tar",
        lambda name, b: b[: len(b) // 3] if name == f"{bad_key}.png" else b,
    )
    stats = D.DataStats()
    got = examples([str(broken)], cfg(), stats, 24)
    keys = {e["key"] for e in got}
    assert bad_key not in keys and keys == {
        "000000_000000",
        "000000_000002",
        "000000_000003",
    }
    assert stats["rejected:image"] >= 1 and stats["samples"] == 24


def test_garbage_shard_is_skipped_and_counted(run_dir, tmp_path, caplog):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar file at all " * 100)
    missing = tmp_path / "missing.tar"
    urls = [str(garbage), str(missing), D.list_shards(run_dir)[0]]
    stats = D.DataStats()
    got = examples(urls, cfg(), stats, 40)  # 10 reads of the good shard, the bad ones drawn in between
    assert len(got) == 40 and {e["key"] for e in got} == {f"000000_00000{i}" for i in range(4)}
    assert stats["shard_errors"] >= 2 and not any(k.startswith("rejected") for k in stats.as_dict())
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert str(garbage) in warned and str(missing) in warned
    # Nothing but garbage: the stream stops with a one-line error instead of spinning forever.
    with pytest.raises(UserError, match="unreadable shards in a row"):
        examples([str(garbage)], cfg(), D.DataStats(), 1, max_shard_errors_in_row=5)


# ---------------------------------------------------------------- finding and checking data


def test_list_shards(run_dir, tmp_path):
    final = sorted(str(p) for p in (run_dir / "final").glob("shard-*.tar"))
    assert D.list_shards(run_dir) == final
    assert D.list_shards(str(run_dir / "final")) == final
    assert D.list_shards(str(run_dir / "final" / "shard-*.tar")) == final
    assert D.list_shards(str(run_dir / "final" / "shard-{000000..000001}.tar")) == final
    assert D.list_shards(final) == final
    assert D.list_shards("https://example.org/shard-{000000..000002}.tar")[-1] == "https://example.org/shard-000002.tar"
    (tmp_path / ".shard-000000.tar.tmp-x").write_bytes(b"")  # a writer's temp file: not a shard
    assert D.list_shards(tmp_path) == []


def test_validate_data_errors(run_dir, tmp_path):
    assert D.validate_data(run_dir) == D.list_shards(run_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    for where in (empty, tmp_path / "nowhere" / "*.tar"):
        with pytest.raises(UserError) as e:
            D.validate_data(where)
        assert str(where) in str(e.value) and "\n" not in str(e.value)

    shard = min((run_dir / "final").glob("shard-*.tar"))

    def unknown(name: str, b: bytes) -> bytes:
        return json.dumps({**json.loads(b), "schema": "sigma-set/9"}).encode() if name.endswith(".json") else b

    other = rewrite(shard, tmp_path / "other.tar", unknown)
    with pytest.raises(UserError) as e:
        D.validate_data([str(other)])
    msg = str(e.value)
    assert str(other) in msg and "'sigma-set/9'" in msg and "\n" not in msg

    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(UserError) as e:
        D.validate_data([str(garbage)])
    assert str(garbage) in str(e.value) and "\n" not in str(e.value)
    assert D.validate_data([str(garbage), str(shard)]) == [
        str(garbage),
        str(shard),
    ]  # a readable one after it
