"""The training loop on the tiny Kontext: curriculum by step, checkpoints, exact resume, the
final LoRA. Data here is a seeded synthetic source (the shard pipeline has its own tests)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from datagen.errors import UserError
from datagen.models.tiny.build import FLUX_KONTEXT, build_flux_kontext
from datagen.train import checkpoint
from datagen.train.config import TrainConfig
from datagen.train.loop import train
from datagen.train.step import Batch


class SeededSource:
    """Batch k of (stage, rank) is a function of those alone, like the shard pipeline's."""

    def __init__(self):
        self.calls = []

    def batches(self, stage_index, stage, rank, world, skip):
        self.calls.append((stage_index, rank, world, skip))
        k = skip
        while True:
            g = torch.Generator().manual_seed(1000 * stage_index + 10 * rank + k)
            n = stage.max_subjects  # the stage's subject count sets I_S's height
            yield Batch(
                target=torch.rand(1, 3, 32, 32, generator=g) * 2 - 1,
                control=torch.rand(1, 3, 32, 32, generator=g) * 2 - 1,
                identities=torch.rand(1, 3, 16 * n, 16, generator=g) * 2 - 1,
                prompts=[f"Place these subjects in scene {k}"],
            )
            k += 1


@pytest.fixture(scope="module")
def kontext(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-kontext")
    (root / FLUX_KONTEXT).mkdir(parents=True)
    build_flux_kontext(root / FLUX_KONTEXT)
    return root


def _cfg(models, **kw):
    return TrainConfig(
        models_dir=str(models), dtype="float32", resolution=32, identity_size=16, max_sequence_length=16,
        lora={"rank": 4, "alpha": 4}, optimizer={"name": "adamw", "lr": 1e-3}, gradient_checkpointing=False,
        curriculum=[{"steps": 3, "max_subjects": 2}, {"steps": 3, "min_subjects": 3, "max_subjects": 3}],
        checkpoint_every=2, log="none", **kw,
    )  # fmt: skip


def test_trains_through_the_curriculum_and_writes_a_lora(kontext, tmp_path):
    source = SeededSource()
    result = train(_cfg(kontext, sample_every=3, sample_steps=2), source, tmp_path / "out", say=lambda _: None)
    previews = sorted(p.name for p in (tmp_path / "out" / "samples").iterdir())
    assert previews == ["step-00000003.png", "step-00000006.png"]
    assert result.steps == 6 and len(result.losses) == 6 and all(torch.isfinite(torch.tensor(result.losses)))
    assert [c[0] for c in source.calls] == [0, 1]  # a new stream when the curriculum moves on
    tensors = load_file(result.lora)
    assert tensors and all("lora" in k for k in tensors)
    assert [p.name for p in sorted((tmp_path / "out" / "checkpoints").iterdir())] == [
        "step-00000002", "step-00000004", "step-00000006"
    ]  # fmt: skip


def test_resume_continues_the_same_loss_sequence(kontext, tmp_path):
    full = train(_cfg(kontext), SeededSource(), tmp_path / "full", say=lambda _: None)
    part = train(_cfg(kontext), SeededSource(), tmp_path / "part", say=lambda _: None, max_steps=4)
    assert part.steps == 4 and part.lora is None and checkpoint.latest(tmp_path / "part").name == "step-00000004"
    source = SeededSource()
    rest = train(_cfg(kontext), source, tmp_path / "part", resume=True, say=lambda _: None)
    assert source.calls == [(1, 0, 1, 1)]  # stage 2, one batch of it already consumed
    torch.testing.assert_close(part.losses + rest.losses, full.losses, rtol=1e-5, atol=1e-6)
    assert load_file(rest.lora).keys() == load_file(full.lora).keys()
    for k, v in load_file(full.lora).items():
        torch.testing.assert_close(load_file(rest.lora)[k], v, rtol=1e-4, atol=1e-6)


def test_an_existing_run_needs_resume_and_a_changed_lora_is_refused(kontext, tmp_path):
    train(_cfg(kontext), SeededSource(), tmp_path / "o", say=lambda _: None, max_steps=2)
    with pytest.raises(UserError, match="holds checkpoints .* add --resume"):
        train(_cfg(kontext), SeededSource(), tmp_path / "o", say=lambda _: None)
    changed = _cfg(kontext)
    changed.lora.rank = 8
    with pytest.raises(UserError, match="does not match the configured one"):
        train(changed, SeededSource(), tmp_path / "o", resume=True, say=lambda _: None)


def _stepped_adamw(scale: float) -> torch.optim.Optimizer:
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    (p * scale).sum().backward()
    opt.step()
    return opt


def test_fsdp_style_checkpoints_keep_one_optimizer_shard_per_rank(tmp_path):
    """Two ranks (threads standing in for processes, with a real barrier) save sharded optimizer
    states; each rank gets its own back, and another world size is refused."""
    import threading

    barrier = threading.Barrier(2)
    lora = {"a.lora_A.default.weight": torch.arange(6.0).reshape(2, 3)}
    optimizers = [_stepped_adamw(1.0), _stepped_adamw(5.0)]
    errors = []

    def save(rank):
        try:
            checkpoint.save(tmp_path, 7, 1, lora if rank == 0 else {}, optimizers[rank], rank=rank, world=2,
                            sharded_optimizer=True, barrier=barrier.wait, extra={"loss": 0.5})  # fmt: skip
        except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=save, args=(r,)) for r in (0, 1)]
    [t.start() for t in threads]
    [t.join(timeout=60) for t in threads]
    assert not errors, errors
    path = checkpoint.latest(tmp_path)
    assert sorted(f.name for f in path.iterdir()) == [
        "lora.safetensors", "optimizer-rank00000.pt", "optimizer-rank00001.pt", "state.json"
    ]  # fmt: skip
    for rank in (0, 1):
        fresh = _stepped_adamw(0.0)
        checkpoint.load_optimizer(path, fresh, rank=rank, world=2)
        torch.testing.assert_close(fresh.state_dict()["state"][0]["exp_avg"], optimizers[rank].state_dict()["state"][0]["exp_avg"])
    with pytest.raises(UserError, match="written by 2 FSDP processes"):
        checkpoint.load_optimizer(path, _stepped_adamw(0.0), rank=0, world=4)
    torch.testing.assert_close(load_file(path / "lora.safetensors")["a.lora_A.default.weight"], lora["a.lora_A.default.weight"])
