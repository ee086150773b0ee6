import numpy as np

from datagen.store.codec import decode_npy, encode_json, encode_npy
from datagen.store.inflight import Sample, decode_array, encode_array, read_stage_samples, write_members
from datagen.store.shards import commit_tar, read_tar


def test_arrays_round_trip_exactly():
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (17, 23, 3), dtype=np.uint8),
        rng.random((3, 17, 23)) > 0.5,
        rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
        rng.integers(0, 11, (17, 23), dtype=np.uint8),
        rng.random((17, 23)).astype(np.float32),
        np.zeros((0, 17, 23), dtype=bool),
    ]
    for arr in arrays:
        spec, suffix, data = encode_array(arr)
        back = decode_array(spec, suffix, data)
        assert back.dtype == arr.dtype and back.shape == arr.shape
        np.testing.assert_array_equal(back, arr)
    assert encode_array(arrays[1])[1] == "png" and encode_array(arrays[4])[1] == "npy"


def test_npy_never_unpickles():
    obj = np.array([{"a": 1}], dtype=object)
    import io

    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    try:
        decode_npy(buf.getvalue())
    except ValueError:
        return
    raise AssertionError("an object array was loaded")


def test_stage_shards_store_only_changed_arrays(tmp_path):
    s = Sample(index=5, shard=1, seed=99, meta={"subjects": []})
    img = np.full((8, 8, 3), 7, np.uint8)
    s.set_array("image", img)
    a = tmp_path / "a.tar"
    commit_tar(a, write_members([s]))
    s.changed.clear()
    s.set_array("depth", np.ones((8, 8), np.float32))
    s.meta["x"] = 1
    b = tmp_path / "b.tar"
    commit_tar(b, write_members([s]))
    names = sorted(__import__("datagen.store.shards", fromlist=["read_tar"]).read_tar(b)["000001_000005"])
    assert names == ["depth.png", "json"]
    (back,) = read_stage_samples([a, b], shard=1)
    assert back.meta["x"] == 1 and back.seed == 99 and back.key == "000001_000005"
    np.testing.assert_array_equal(back.arrays["image"], img)
    assert back.arrays["depth"].dtype == np.float32


def test_drop_subjects_keeps_arrays_aligned():
    s = Sample(index=0, shard=0, seed=0, meta={"subjects": [{"name": n, "caption": n} for n in "abc"]})
    s.set_array("masks", np.stack([np.full((2, 2), i == k) for k in range(3) for i in [0]]))
    s.set_array("identity", np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3))
    s.drop_subjects({1: "overlap"}, "segment")
    assert [x["name"] for x in s.subjects] == ["a", "c"]
    assert s.arrays["masks"].shape[0] == 2 and s.arrays["identity"].shape[0] == 2
    assert s.meta["rejected_subjects"] == [{"name": "b", "caption": "b", "stage": "segment", "reason": "overlap"}]


def test_json_is_canonical():
    assert encode_json({"b": 1, "a": [1.5, "x"]}) == b'{"a":[1.5,"x"],"b":1}'
    assert encode_npy(np.zeros(2, np.float32)) == encode_npy(np.zeros(2, np.float32))


def test_depth_is_stored_as_log16_and_reads_back_as_the_stage_saw_it(tmp_path):
    """A later stage sees the same depth whether it got the sample in memory or from the shard
    (a resumed run): set_array keeps the stored codes, and writing them again changes nothing."""
    rng = np.random.default_rng(3)
    depth = np.exp(rng.uniform(np.log(0.5), np.log(80.0), (64, 96))).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    s = Sample(index=2, shard=0, seed=1, meta={"subjects": []})
    s.set_array("depth", depth)
    in_memory = s.arrays["depth"]
    known = np.isfinite(depth)
    assert np.array_equal(np.isnan(in_memory), ~known)
    assert np.max(np.abs(in_memory[known] / depth[known] - 1)) <= np.log(160) / 131068 * 1.01
    first = tmp_path / "first.tar"
    commit_tar(first, write_members([s]))
    (back,) = read_stage_samples([first], shard=0)
    np.testing.assert_array_equal(back.arrays["depth"], in_memory)
    again = tmp_path / "again.tar"
    back.changed.add("depth")
    commit_tar(again, write_members([back]))
    assert again.read_bytes() == first.read_bytes()
    stored = read_tar(first)["000000_000002"]
    assert set(stored) == {"json", "depth.png"} and len(stored["depth.png"]) < 0.6 * depth.nbytes
