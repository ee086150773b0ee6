"""The source readers of `datagen ingest`: small datasets written with `datasets` itself in each
source's exact layout (AnyInsertion parquet, MUSAR-Gen save_to_disk, an image folder with
metadata.jsonl, an hf table), every kind converted, every bad row refused with its reason, and
every source that is not what its kind says refused in one line."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from datagen.errors import UserError
from datagen.ingest.rows import IDENTITY_BACKGROUND, BadRow, cut_out, mask
from datagen.ingest.sources import SourceConfig, open_source

H, W = 24, 32


def picture(seed: int, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """A flat background with an ellipse of another colour, and the ellipse's mask."""
    rng = np.random.default_rng(seed)
    bg, fg = rng.integers(0, 120, 3), rng.integers(140, 256, 3)
    cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
    ry, rx = rng.integers(2, h // 3), rng.integers(2, w // 3)
    yy, xx = np.ogrid[:h, :w]
    m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    image = np.where(m[..., None], fg, bg).astype(np.uint8)
    return image, m


def png(a: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(a.astype(np.uint8) * (255 if a.dtype == bool else 1)).save(out, "PNG")
    return out.getvalue()


def img(a: np.ndarray | None) -> dict | None:
    return None if a is None else {"bytes": png(a), "path": None}


def expected_cut(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The identity rule written out again: bbox crop, background outside, centred square."""
    ys, xs = np.nonzero(m)
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].copy()
    crop[~m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]] = IDENTITY_BACKGROUND
    h, w = crop.shape[:2]
    side = max(h, w)
    out = np.full((side, side, 3), IDENTITY_BACKGROUND, np.uint8)
    out[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = crop
    return out


def reason(source, i: int) -> str:
    with pytest.raises(BadRow) as e:
        source.row(i)
    return e.value.reason


def user_error(cfg: SourceConfig, cache: Path) -> str:
    with pytest.raises(UserError) as e:
        open_source(cfg, cache_dir=cache)
    assert "\n" not in str(e.value)
    return str(e.value)


# --- AnyInsertion: parquet shards under data/, as on the hub -------------------------------

AI_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"), "split": datasets.Value("string"), "category": datasets.Value("string"),
        "main_label": datasets.Value("string"), "ref_image": datasets.Image(), "ref_mask": datasets.Image(),
        "tar_image": datasets.Image(), "tar_mask": datasets.Image(),
    }
)  # fmt: skip
AI_GOOD = 3  # rows 0-2 good; then one bad row per reason
AI_BAD = ["missing_field", "undecodable_image", "mask_size", "empty_mask", "reference_without_mask", "mask_size"]


def anyinsertion_rows() -> list[dict]:
    rows = []
    for k in range(AI_GOOD + len(AI_BAD)):
        tar, tar_m = picture(k)
        ref, ref_m = picture(100 + k, 20, 16)
        rows.append(dict(id=f"train/object/{k}", split="train", category="object", main_label=f"thing{k}",
                         ref_image=img(ref), ref_mask=img(ref_m), tar_image=img(tar), tar_mask=img(tar_m)))  # fmt: skip
    bad = rows[AI_GOOD:]
    bad[0]["main_label"] = None
    bad[1]["tar_image"] = {"bytes": b"not an image at all", "path": None}
    bad[2]["tar_mask"] = img(np.ones((H, W + 1), bool))
    bad[3]["tar_mask"] = img(np.zeros((H, W), bool))
    bad[4]["ref_mask"] = None
    bad[5]["ref_mask"] = img(np.ones((16, 20), bool))  # the reference is 16 wide, 20 high
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    rows = anyinsertion_rows()
    table = datasets.Dataset.from_list(rows, features=AI_FEATURES)
    (root / "anyins" / "data").mkdir(parents=True)
    # two shards, as the hub's train-0000N-of-0000M files: row order is shard order, then row
    table.select(range(5)).to_parquet(str(root / "anyins/data/train-00000-of-00002.parquet"))
    table.select(range(5, len(rows))).to_parquet(str(root / "anyins/data/train-00001-of-00002.parquet"))

    musar = {"tgt_img": [], "cond_img_0": [], "cond_img_1": [], "prompt": []}
    for k in range(3):
        for col, seed in (("tgt_img", k), ("cond_img_0", 10 + k), ("cond_img_1", 20 + k)):
            musar[col].append(img(picture(seed)[0]))
        musar["prompt"].append(f"two things, take {k}")
    musar["cond_img_1"][2] = None
    image = datasets.Image()
    features = datasets.Features({c: image for c in ("tgt_img", "cond_img_0", "cond_img_1")} | {"prompt": datasets.Value("string")})
    datasets.Dataset.from_dict(musar, features=features).save_to_disk(str(root / "musar"))
    return root


def test_anyinsertion_converts_every_good_row(data, tmp_path):
    src = open_source(SourceConfig(kind="anyinsertion", path=str(data / "anyins")), cache_dir=tmp_path)
    assert len(src) == AI_GOOD + len(AI_BAD)
    assert src.info.kind == "anyinsertion" and src.info.dataset == str(data / "anyins")
    assert src.info.licence is None and "2504.15009" in src.info.citation
    for k in range(AI_GOOD):
        row = src.row(k)
        tar, tar_m = picture(k)
        ref, ref_m = picture(100 + k, 20, 16)
        assert (row.index, row.id, row.prompt) == (k, f"train/object/{k}", None)
        assert row.image.dtype == np.uint8 and np.array_equal(row.image, tar)
        [s] = row.subjects
        assert (s.name, s.caption) == (f"thing{k}", None)
        assert s.mask.dtype == bool and np.array_equal(s.mask, tar_m)
        assert s.reference.shape[0] == s.reference.shape[1] and s.reference.dtype == np.uint8
        assert np.array_equal(s.reference, expected_cut(ref, ref_m))


def test_anyinsertion_bad_rows_are_refused_one_by_one(data, tmp_path):
    src = open_source(SourceConfig(kind="anyinsertion", path=str(data / "anyins")), cache_dir=tmp_path)
    assert [reason(src, AI_GOOD + j) for j in range(len(AI_BAD))] == AI_BAD
    with pytest.raises(IndexError):
        src.row(len(src))


def test_row_order_is_fixed_across_opens(data, tmp_path):
    ids = []
    for cache in ("a", "b"):
        src = open_source(SourceConfig(kind="anyinsertion", path=str(data / "anyins")), cache_dir=tmp_path / cache)
        ids.append([src.row(k).id for k in range(AI_GOOD)])
    assert ids[0] == ids[1] == [f"train/object/{k}" for k in range(AI_GOOD)]


def test_musar_takes_the_cond_images_as_they_are(data, tmp_path):
    src = open_source(SourceConfig(kind="musar", path=str(data / "musar")), cache_dir=tmp_path)
    assert len(src) == 3 and src.info.licence == "apache-2.0" and "2505.02823" in src.info.citation
    row = src.row(1)
    assert (row.id, row.prompt) == ("1", "two things, take 1")
    assert np.array_equal(row.image, picture(1)[0])
    assert [(s.name, s.caption, s.mask) for s in row.subjects] == [(None, None, None)] * 2
    assert np.array_equal(row.subjects[0].reference, picture(11)[0])
    assert np.array_equal(row.subjects[1].reference, picture(21)[0])
    assert reason(src, 2) == "missing_field"


def test_licence_and_citation_can_be_given(data, tmp_path):
    cfg = SourceConfig(kind="anyinsertion", path=str(data / "anyins"), licence="cc-by-4.0", citation="Me, 2026.")
    info = open_source(cfg, cache_dir=tmp_path).info
    assert (info.licence, info.citation) == ("cc-by-4.0", "Me, 2026.")


# --- hf: any table, with a column mapping ---------------------------------------------------


@pytest.fixture(scope="module")
def hf_file(data) -> Path:
    rows = []
    for k in range(3):
        (tar, m), (ref, ref_m) = picture(200 + k), picture(300 + k)
        rows.append(dict(picture=img(tar), text=f"prompt {k}", who=f"who{k}", blob=img(m), alone=img(ref),
                         alone_mask=img(ref_m), other=img(picture(400 + k)[0])))  # fmt: skip
    rows[2]["alone_mask"] = None
    path = data / "table.parquet"
    features = datasets.Features({c: datasets.Image() for c in ("picture", "blob", "alone", "alone_mask", "other")})
    features |= {c: datasets.Value("string") for c in ("text", "who")}
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return path


HF_COLUMNS = {
    "image": "picture", "prompt": "text",
    "subjects": [{"name": "who", "mask": "blob", "reference": "alone", "reference_mask": "alone_mask"}, {"reference": "other"}],
}  # fmt: skip


def test_hf_follows_its_column_mapping(hf_file, tmp_path):
    src = open_source(SourceConfig(kind="hf", path=str(hf_file), columns=HF_COLUMNS), cache_dir=tmp_path)
    assert len(src) == 3 and src.info.licence is None
    row = src.row(0)
    (tar, m), (ref, ref_m) = picture(200), picture(300)
    assert (row.id, row.prompt) == ("0", "prompt 0") and np.array_equal(row.image, tar)
    first, second = row.subjects
    assert first.name == "who0" and np.array_equal(first.mask, m)
    assert np.array_equal(first.reference, expected_cut(ref, ref_m))
    assert second.name is None and second.mask is None and np.array_equal(second.reference, picture(400)[0])
    assert reason(src, 2) == "reference_without_mask"


def test_hf_mapping_of_an_absent_column_is_one_line(hf_file, tmp_path):
    columns = {**HF_COLUMNS, "subjects": [{"name": "who", "mask": "nowhere"}]}
    msg = user_error(SourceConfig(kind="hf", path=str(hf_file), columns=columns), tmp_path)
    assert str(hf_file) in msg and "nowhere" in msg


def test_hf_mapping_of_a_non_image_as_an_image_is_one_line(tmp_path):
    path = tmp_path / "ints.parquet"
    datasets.Dataset.from_dict({"n": [1, 2]}).to_parquet(str(path))
    msg = user_error(SourceConfig(kind="hf", path=str(path), columns={"image": "n", "subjects": [{}]}), tmp_path / "c")
    assert str(path) in msg and "column n is not an image" in msg


# --- folder: an image folder with metadata.jsonl ---------------------------------------------


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "pics"
    for d in ("sub", "refs", "masks"):
        (root / d).mkdir(parents=True)
    names = ["b.png", "a.png", "sub/c.png", "d.png", "e.png", "f.png", "g.png"]
    for k, name in enumerate(names):
        image, m = picture(500 + k)
        Image.fromarray(image).save(root / name)
        Image.fromarray(m.astype(np.uint8) * 255).save(root / "masks" / name.replace("/", "_"))
    ref, ref_m = picture(600, 18, 12)
    Image.fromarray(ref).save(root / "refs/r.png")
    Image.fromarray(ref_m.astype(np.uint8) * 255).save(root / "refs/r_mask.png")
    Image.fromarray(ref).save(tmp_path / "outside.png")
    subject = {"name": "ball", "caption": "a red ball", "mask": None, "reference": "refs/r.png", "reference_mask": "refs/r_mask.png"}
    lines = {
        "b.png": [subject | {"mask": "masks/b.png"}],
        "a.png": [{"name": "cup", "reference": "refs/r.png"}, {"caption": "something"}],
        "sub/c.png": [subject],
        "d.png": [],
        "e.png": [{"reference": "../outside.png"}],
        "f.png": [{"mask": "/etc/hostname"}],
        "g.png": [{"mask": "masks/missing.png"}],
    }
    with open(root / "metadata.jsonl", "w") as f:  # not in file-name order on purpose
        for name in names:
            f.write(json.dumps({"file_name": name, "prompt": f"look at {name}", "subjects": lines[name]}) + "\n")
    return root


def test_folder_rows_come_in_file_name_order(folder, tmp_path):
    src = open_source(SourceConfig(kind="folder", path=str(folder)), cache_dir=tmp_path / "cache")
    # refs/ and masks/ hold images too, but imagefolder keeps only those metadata.jsonl lists
    assert len(src) == 7
    rows = {k: src.row(k) for k in (0, 1, 6)}
    assert [rows[k].id for k in (0, 1, 6)] == ["a.png", "b.png", "sub/c.png"]
    a, b, c = rows[0], rows[1], rows[6]
    assert a.prompt == "look at a.png" and np.array_equal(a.image, picture(501)[0])
    assert [(s.name, s.caption, s.mask) for s in a.subjects] == [("cup", None, None), (None, "something", None)]
    ref, ref_m = picture(600, 18, 12)
    assert np.array_equal(a.subjects[0].reference, ref) and a.subjects[1].reference is None
    [ball] = b.subjects
    assert (ball.name, ball.caption) == ("ball", "a red ball") and np.array_equal(ball.mask, picture(500)[1])
    assert np.array_equal(ball.reference, expected_cut(ref, ref_m))
    assert c.subjects[0].mask is None and np.array_equal(c.image, picture(502)[0])


def test_folder_bad_rows(folder, tmp_path):
    src = open_source(SourceConfig(kind="folder", path=str(folder)), cache_dir=tmp_path / "cache")
    order = ["a.png", "b.png", "d.png", "e.png", "f.png", "g.png", "sub/c.png"]
    got = {name: reason(src, order.index(name)) for name in ("d.png", "e.png", "f.png", "g.png")}
    assert got == {"d.png": "no_subjects", "e.png": "unsafe_path", "f.png": "unsafe_path", "g.png": "undecodable_image"}


def test_a_folder_needs_subjects_and_paths_inside_it(folder, tmp_path):
    meta = folder / "metadata.jsonl"
    text = meta.read_text()
    meta.write_text(text.replace('"file_name": "b.png"', '"file_name": "../outside.png"'))
    msg = user_error(SourceConfig(kind="folder", path=str(folder)), tmp_path / "c1")
    assert str(folder) in msg and "../outside.png" in msg
    meta.unlink()
    msg = user_error(SourceConfig(kind="folder", path=str(folder)), tmp_path / "c2")
    assert str(folder) in msg and "subjects" in msg


# --- sources that are not what their kind says -----------------------------------------------


def test_a_source_of_another_kind_is_refused_in_one_line(data, tmp_path):
    msg = user_error(SourceConfig(kind="anyinsertion", path=str(data / "musar")), tmp_path)
    assert msg.startswith(str(data / "musar")) and "tar_image" in msg and "AnyInsertion" in msg
    msg = user_error(SourceConfig(kind="musar", path=str(data / "anyins")), tmp_path)
    assert "tgt_img" in msg


def test_a_missing_path_or_split_is_refused_in_one_line(data, tmp_path):
    missing = tmp_path / "nothing-here"
    assert str(missing) in user_error(SourceConfig(kind="anyinsertion", path=str(missing)), tmp_path)
    assert str(missing) in user_error(SourceConfig(kind="folder", path=str(missing)), tmp_path)
    msg = user_error(SourceConfig(kind="anyinsertion", path=str(data / "anyins"), split="test"), tmp_path)
    assert "test" in msg
    # a hub id that is not in the local cache (the tests are offline)
    assert "nobody/no-such-dataset" in user_error(SourceConfig(kind="musar", path="nobody/no-such-dataset"), tmp_path)


def test_hf_needs_columns_and_only_hf_takes_them():
    with pytest.raises(ValueError):
        SourceConfig(kind="hf", path="x")
    with pytest.raises(ValueError):
        SourceConfig(kind="musar", path="x", columns={"image": "a", "subjects": [{}]})
    with pytest.raises(ValueError):
        SourceConfig(kind="hf", path="x", columns={"image": "a", "subjects": [{"reference_mask": "m"}]})


# --- the image rules ---------------------------------------------------------------------------


def test_cut_out_is_the_mask_box_centred_on_a_square():
    image = np.zeros((6, 8, 3), np.uint8) + 9
    m = np.zeros((6, 8), bool)
    m[2:4, 1:5] = True  # 2 high, 4 wide
    m[3, 1] = False
    out = cut_out(image, m)
    assert out.shape == (4, 4, 3)
    assert (out[[0, 3]] == IDENTITY_BACKGROUND).all()
    assert (out[1:3] == 9).sum() == 7 * 3 and (out[2, 0] == IDENTITY_BACKGROUND).all()


def test_masks_threshold_above_127():
    grey = np.array([[127, 128], [0, 255]], np.uint8)
    assert mask(img(grey), "m", (2, 2)).tolist() == [[False, True], [False, True]]


def test_bad_row_pickles_with_its_reason():
    e = pickle.loads(pickle.dumps(BadRow("mask_size", "tar_mask is 3x3")))
    assert (e.reason, e.detail, str(e)) == ("mask_size", "tar_mask is 3x3", "mask_size: tar_mask is 3x3")
