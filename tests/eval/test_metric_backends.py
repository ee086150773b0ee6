"""`datagen eval`'s metric models on their real backends: SigLIP, CLIP-IQA, MUSIQ and DINOv2 as
tiny random-weight models built by `datagen tiny-models`' registry and loaded by their real ids
from models_dir, through the same `load` the real weights take."""

from __future__ import annotations

import re
import subprocess
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.errors import BackendUnavailable, UserError
from datagen.eval.config import MetricModel, MetricModels
from datagen.models.dinov2 import DinoEmbedder
from datagen.models.iqa import MUSIQ_ARCH_FILE, ClipIqa, Musiq
from datagen.models.siglip import SiglipJudge
from datagen.models.tiny.build import build_tiny_models
from datagen.models.tiny.eval_models import MUSIQ_DIR
from datagen.models.tiny.perception import DINOV2

M = MetricModels()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-eval")
    build_tiny_models(root, only=[M.siglip.model, M.clip_iqa.model, MUSIQ_DIR, DINOV2], say=lambda _: None)
    return root


def images(n: int = 4, shape=(48, 64, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def with_batch(cfg: MetricModel, batch_size: int) -> MetricModel:
    return cfg.model_copy(update={"batch_size": batch_size, "device": "cpu"})


@pytest.fixture(scope="module")
def siglip(models) -> SiglipJudge:
    return SiglipJudge.load(with_batch(M.siglip, 2), str(models))


def test_the_tiny_build_lays_models_out_as_the_real_ids(models):
    for model_id in (M.siglip.model, M.clip_iqa.model):
        assert (models / model_id / "model.safetensors").is_file(), model_id
    assert (models / M.musiq.model).is_file()  # a checkpoint file, as pyiqa publishes it
    assert json.loads((models / MUSIQ_DIR / MUSIQ_ARCH_FILE).read_text())["num_layers"] == 1


def test_siglip_embeds_unit_vectors_and_an_image_matches_itself(siglip):
    ims = images(3)
    emb = siglip.embed_images([*ims, ims[0]])  # the copy lands in another batch of 2
    assert emb.shape == (4, siglip.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert 100.0 * float(emb[0] @ emb[3]) == pytest.approx(100.0, abs=1e-3)
    assert 100.0 * float(emb[0] @ emb[1]) < 99.9
    assert siglip.embed_images([]).shape == (0, siglip.dim)


def test_siglip_texts_are_padded_to_the_context_and_scored_x100(siglip):
    texts = ["A red ceramic mug on a table.", "a dog"]
    emb = siglip.embed_texts(texts)
    assert emb.shape == (2, siglip.dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Padding to max_length: a text's embedding does not depend on what it is batched with.
    np.testing.assert_allclose(siglip.embed_texts(texts[:1])[0], emb[0], atol=1e-5)
    ims = images(2)
    scores = siglip.text_scores(ims, texts)
    expected = 100.0 * (siglip.embed_images(ims) * emb).sum(axis=1)
    assert scores == pytest.approx(list(expected), abs=1e-3)
    assert all(-100.0 <= s <= 100.0 for s in scores)
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        siglip.text_scores(ims, texts[:1])


def test_clip_iqa_is_the_good_photo_probability(models):
    iqa = ClipIqa.load(with_batch(M.clip_iqa, 3), str(models))
    ims = [*images(4), np.zeros((30, 30, 3), np.uint8)]
    probs = iqa.probabilities(ims)
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    scores = iqa.score(ims)
    assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx(list(probs[:, 0]))
    assert iqa.score([]) == []


def test_musiq_gives_one_finite_mos_per_image_that_depends_on_the_image(models):
    musiq = Musiq.load(with_batch(M.musiq, 2), str(models))
    ims = [*images(3), np.zeros((40, 40, 3), np.uint8), np.full((40, 40, 3), 255, np.uint8)]
    scores = musiq.score(ims)
    assert len(scores) == 5 and all(isinstance(s, float) and np.isfinite(s) for s in scores)
    assert len(set(np.round(scores, 6))) == 5
    # Batching (by size, batch_size at a time) does not change an image's score.
    assert musiq.score(ims[1:2]) == pytest.approx(scores[1:2], abs=1e-5)
    assert musiq.score(ims[3:4] + ims[:1]) == pytest.approx([scores[3], scores[0]], abs=1e-5)


def test_dino_loads_from_its_metric_settings(models):
    dino = DinoEmbedder.from_metric(with_batch(M.dino, 3), str(models))
    assert dino.batch_size == 3
    emb = dino.embed(images(2))
    assert emb.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["siglip", "clip_iqa", "dino", "musiq"])
def test_a_missing_model_is_one_line_naming_it(tmp_path, name):
    cfg = getattr(M, name)
    load = {"siglip": SiglipJudge.load, "clip_iqa": ClipIqa.load, "dino": DinoEmbedder.from_metric, "musiq": Musiq.load}[name]
    with pytest.raises(UserError) as e:
        load(cfg, str(tmp_path))
    assert cfg.model in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith(f"metrics.{name}: ")


def test_a_musiq_checkpoint_that_pickles_code_or_another_architecture_is_refused(models, tmp_path):
    (tmp_path / "pyiqa").mkdir()
    ckpt = tmp_path / M.musiq.model
    torch.save({"conv_root.weight": Path("not a tensor")}, ckpt)  # a pickled object: weights-only refuses it
    with pytest.raises(UserError, match="not a tensors-only checkpoint"):
        Musiq.load(M.musiq, str(tmp_path))
    torch.save(torch.load(models / M.musiq.model, weights_only=True), ckpt)  # tiny weights, no musiq.json
    with pytest.raises(UserError, match="does not fit pyiqa's MUSIQ"):
        Musiq.load(M.musiq, str(tmp_path))


def test_musiq_json_cannot_point_pyiqa_at_a_download(models, tmp_path):
    (tmp_path / "pyiqa").mkdir()
    (tmp_path / M.musiq.model).write_bytes((models / M.musiq.model).read_bytes())
    arch = json.loads((models / MUSIQ_DIR / MUSIQ_ARCH_FILE).read_text())
    arch.update(pretrained="koniq10k", pretrained_model_path="https://example.invalid/musiq.pth")
    (tmp_path / MUSIQ_DIR / MUSIQ_ARCH_FILE).write_text(json.dumps(arch))
    assert len(Musiq.load(M.musiq, str(tmp_path)).score(images(1))) == 1


def test_without_pyiqa_musiq_names_the_eval_extra(models, monkeypatch):
    for name in ("pyiqa", "pyiqa.archs", "pyiqa.archs.musiq_arch"):
        monkeypatch.setitem(sys.modules, name, None)  # as if pyiqa were not installed
    with pytest.raises(BackendUnavailable, match=r"datagen\[eval\]") as e:
        Musiq.load(M.musiq, str(models))
    assert "\n" not in str(e.value)


def test_siglip_reads_the_hubs_sentencepiece_tokenizer_and_names_the_extra_without_it(models):
    """SigLIP checkpoints ship spiece.model for SiglipTokenizer (sentencepiece), and so does the
    tiny build; without sentencepiece the load is one line naming datagen[eval]."""
    path = models / M.siglip.model
    assert (path / "spiece.model").is_file()
    assert type(SiglipJudge.load(M.siglip, str(models)).processor.tokenizer).__name__ == "SiglipTokenizer"
    code = (
        "import sys; sys.modules['sentencepiece'] = None\n"  # as if it were not installed, before transformers looks
        "from datagen.eval.config import MetricModel\n"
        "from datagen.models.siglip import SiglipJudge\n"
        f"SiglipJudge.load(MetricModel(model={str(path)!r}), None)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert re.search(r"BackendUnavailable: metrics\.siglip: .*SentencePiece.*datagen\[eval\]", run.stderr), run.stderr[-2000:]
