"""sigma-set/2's depth.png: log16 within FORMAT.md's error bound, unknown pixels exact, the JSON's
6-decimal range decodes what was encoded, and plain PIL / OpenCV read it as uint16."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from datagen.store.codec import round_floats
from datagen.store.depth_png import LEVELS, LogRange, decode_depth_png, encode_depth_png, log_range


def _depth(seed: int, lo: float = 0.3, hi: float = 30.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    depth = np.exp(rng.uniform(np.log(lo), np.log(hi), size=(96, 128))).astype(np.float32)
    depth[rng.random(depth.shape) < 0.05] = np.nan
    depth[0, :3] = [0.0, -1.0, np.inf]  # not a depth either: unknown
    return depth


@pytest.mark.parametrize("seed", range(3))
def test_relative_error_is_within_the_formats_bound_and_unknown_stays_unknown(seed):
    depth = _depth(seed)
    data, rng = encode_depth_png(depth)
    # Through the JSON as the writer stores it (6 decimals), not the in-memory floats.
    stored = round_floats(rng.to_json())
    back = decode_depth_png(data, LogRange(stored["log_min"], stored["log_max"]))
    known = np.isfinite(depth) & (depth > 0)
    assert np.array_equal(np.isnan(back), ~known)
    rel = np.abs(back[known].astype(np.float64) / depth[known] - 1)
    bound = (rng.log_max - rng.log_min) / (2 * LEVELS)
    assert rel.max() <= bound * 1.01 + 1e-7  # float32 depth adds ~6e-8
    assert rel.max() <= 1e-4  # the goal, for a 100x range


def test_plain_readers_see_16_bit_codes_with_zero_for_unknown():
    depth = _depth(7)
    data, _ = encode_depth_png(depth)
    with Image.open(io.BytesIO(data)) as im:
        codes = np.asarray(im)
    assert im.mode == "I;16" and codes.shape == depth.shape
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), codes.astype(np.uint16))
    assert (codes == 0).sum() == (~(np.isfinite(depth) & (depth > 0))).sum()
    assert codes.max() == LEVELS + 1 and codes[codes > 0].min() == 1


def test_the_same_depth_gives_the_same_bytes_and_degenerate_depths_round_trip():
    depth = _depth(3)
    assert encode_depth_png(depth)[0] == encode_depth_png(depth.copy())[0]
    flat = np.full((4, 5), 2.5, np.float32)
    data, rng = encode_depth_png(flat)
    assert rng.log_min <= np.log(2.5) <= rng.log_max
    assert np.allclose(decode_depth_png(data, rng), 2.5, rtol=1e-5)
    unknown = np.full((4, 5), np.nan, np.float32)
    data, rng = encode_depth_png(unknown)
    assert rng == LogRange(0.0, 0.0) and np.isnan(decode_depth_png(data, rng)).all()


def test_the_range_is_rounded_outwards_so_every_depth_stays_inside_it():
    depth = np.array([[1.2345678, 9.8765432]], np.float32)
    rng = log_range(depth)
    assert rng.log_min <= np.log(depth.min()) and rng.log_max >= np.log(depth.max())
    assert round_floats(rng.to_json()) == rng.to_json()


def test_an_8_bit_png_is_not_depth():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="16-bit"):
        decode_depth_png(buf.getvalue(), LogRange(0.0, 1.0))


def test_codes_survive_an_intermediate_member_unchanged():
    from datagen.store.depth_png import Log16

    first = Log16.of(_depth(7))
    spec, suffix, data = first.encode_member()
    back = Log16.from_member(round_floats(spec), data)
    assert suffix == "png" and back.range == first.range
    np.testing.assert_array_equal(back.codes, first.codes)
    np.testing.assert_array_equal(back.decode(), first.decode())
