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


FIXTURE = REPO / "tests" / "fixtures" / "v1_run"  # a committed sigma-set/1 run (read, never written)
SCHEMAS = {"v1": "sigma-set/1", "v2": "sigma-set/2"}


@pytest.fixture(scope="module")
def v1_samples() -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for shard in sorted((FIXTURE / "final").glob("shard-*.tar")):
        out.update(read_tar(shard))
    return out


def _samples_of(request, version: str) -> dict[str, dict[str, bytes]]:
    """The /1 fixture's samples, or the /2 samples the pipeline writes now."""
    samples = request.getfixturevalue("v1_samples" if version == "v1" else "samples")
    assert {json.loads(m["json"])["schema"] for m in samples.values()} == {SCHEMAS[version]}
    return samples


def _png_array(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _drop(field: str):
    return lambda m: {f: b for f, b in m.items() if f != field}


def _edit(field: str, fn):
    """Replace member `field` by fn(its bytes, the sample's json as a dict)."""
    return lambda m: {**m, field: fn(m[field], json.loads(m["json"]))}


def _json(change):
    return _edit("json", lambda b, meta: json.dumps(change(meta)).encode())


def _instances_beyond_count(b: bytes, meta: dict) -> bytes:
    a = _png_array(b).copy()
    a[0, 0] = len(meta["subjects"]) + 1  # a subject the json does not list
    return _png(a)


def _one_identity_short(b: bytes, meta: dict) -> bytes:
    """identities.png with the last identity cut off: N - 1 identities tall."""
    return _png(_png_array(b)[: -meta["subjects"][0]["identity"]["height"]])


def _taller_identities(meta: dict) -> dict:
    """The json claims every identity is a row taller than identities.png holds."""
    subjects = [{**s, "identity": {**s["identity"], "height": s["identity"]["height"] + 1}} for s in meta["subjects"]]
    return {**meta, "subjects": subjects}


# (reason-what, change): each break applies to the members of the version under test; the
# reason is the BadSample counter the decoder must give.
BOTH = [
    ("json-undecodable", _edit("json", lambda b, m: b"{not json")),
    ("json-other-key", _json(lambda m: {**m, "key": "000009_000009"})),
    ("schema-unknown", _json(lambda m: {**m, "schema": "sigma-set/9"})),
    ("count-no-subjects", _json(lambda m: {**m, "subjects": []})),
    ("image-png-truncated", _edit("png", lambda b, m: b[: len(b) // 2])),
    ("missing-png", _drop("png")),
    ("missing-json", _drop("json")),
]
V1_BREAKS = [
    ("count-no-mask_01", _drop("mask_01.png")),
    ("count-no-id_00", _drop("id_00.png")),
    ("image-mask-garbage", _edit("mask_00.png", lambda b, m: b"garbage")),
    ("shape-mask-8x8", _edit("mask_00.png", lambda b, m: _png(np.zeros((8, 8), np.uint8)))),
    ("missing-depth.npy", _drop("depth.npy")),
    ("depth-npy-garbage", _edit("depth.npy", lambda b, m: b"garbage")),
    ("shape-depth-64x64", _edit("depth.npy", lambda b, m: _npy(np.zeros((64, 64), np.float32)))),
    ("shape-depth-int32", _edit("depth.npy", lambda b, m: _npy(np.zeros((m["height"], m["width"]), np.int32)))),
]
V2_BREAKS = [
    ("missing-instances", _drop("instances.png")),
    ("missing-identities", _drop("identities.png")),
    ("missing-depth.png", _drop("depth.png")),
    ("image-instances-garbage", _edit("instances.png", lambda b, m: b"garbage")),
    ("image-identities-truncated", _edit("identities.png", lambda b, m: b[: len(b) // 2])),
    ("shape-instances-64x64", _edit("instances.png", lambda b, m: _png(np.zeros((64, 64), np.uint8)))),
    ("count-instance-beyond-subjects", _edit("instances.png", _instances_beyond_count)),
    ("shape-identities-one-short", _edit("identities.png", _one_identity_short)),
    ("shape-identity-height-in-json", _json(_taller_identities)),
    ("depth-8bit", _edit("depth.png", lambda b, m: _png((_png_array(b) >> 8).astype(np.uint8)))),  # 8 bit
    ("depth-png-garbage", _edit("depth.png", lambda b, m: b"garbage")),
    ("shape-depth-64x64", _edit("depth.png", lambda b, m: _png(np.ones((64, 64), np.uint16)))),
]
BREAKS = [(v, *c) for v in ("v1", "v2") for c in BOTH] + [("v1", *c) for c in V1_BREAKS] + [("v2", *c) for c in V2_BREAKS]


@pytest.mark.parametrize(
    "version, reason, change", [pytest.param(v, what.split("-")[0], change, id=f"{v}-{what}") for v, what, change in BREAKS]
)
def test_decode_rejects_bad_samples(request, version, reason, change):
    key, members = min(_samples_of(request, version).items())
    D.decode_sample(members, key)  # good as written
    bad = change(members)
    assert bad != members
    with pytest.raises(D.BadSample) as e:
        D.decode_sample(bad, key)
    assert e.value.reason == reason, str(e.value)


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pickled_members_are_never_unpickled(request, version, tmp_path):
    """/1: sample 0's depth.npy holds a pickled object array (rejected, never unpickled). /2:
    sample 0 carries the same array as an unknown member (ignored: the sample still trains).
    Every sample also carries .pyd / .pickle members, which webdataset's own decoders would
    unpickle."""
    samples = _samples_of(request, version)
    marker = tmp_path / "unpickled"
    payload = _evil_pickle(marker)
    pickle.loads(payload)  # the payload works: unpickling it does create the marker
    assert marker.exists()
    marker.unlink()

    evil_npy = _npy(np.array([_Reducer(marker)], dtype=object), allow_pickle=True)
    members = []
    for i, (key, fields) in enumerate(sorted(samples.items())[:4]):
        fields = dict(fields)
        if i == 0:  # /1: its depth, an object array holding the payload; /2: an unknown member
            assert ("depth.npy" in fields) == (version == "v1")
            fields["depth.npy"] = evil_npy
        for field, data in sorted(fields.items()):
            members.append((f"{key}.{field}", data))
        members += [(f"{key}.pyd", payload), (f"{key}.pickle", payload)]
    shard = tmp_path / "evil.tar"
    shard.write_bytes(tar_bytes(members))

    assert D.validate_data(str(shard)) == [str(shard)]
    stats = D.DataStats()
    got = examples([str(shard)], cfg(), stats, 12)
    keys = [k for k, _ in sorted(samples.items())[:4]]
    if version == "v1":
        assert {e["key"] for e in got} == set(keys[1:])
        assert stats["rejected:depth"] >= 1
    else:
        assert {e["key"] for e in got} == set(keys)
        assert not [k for k in stats.as_dict() if k.startswith("rejected")]
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
