"""The training loop: accelerate (one process, DDP, or FSDP through `accelerate launch`), the
curriculum by step, checkpoints that resume exactly, logging, and the final LoRA file.

Determinism: each step's noise comes from (seed, step, micro-batch, process), and the data
source yields the same batches for the same (seed, stage, process) and skip count, so a run
resumed from a checkpoint continues the loss sequence of an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from datagen.errors import UserError
from datagen.models.hub import require
from datagen.seeds import stage_rng
from datagen.train import checkpoint
from datagen.train.config import CurriculumStage, OptimizerConfig, TrainConfig
from datagen.train.model import LoraSpec, add_lora, load_kontext_pipeline, save_lora
from datagen.train.step import Batch, step_loss


class BatchSource(Protocol):
    def batches(self, stage_index: int, stage: CurriculumStage, rank: int, world: int, skip: int) -> Iterator[Batch]:
        """Batches of one curriculum stage for one process, after skipping `skip` of them."""
        ...


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    lora: Path | None = None
    main: bool = True  # the process that writes files and reports
    mix: dict[str, dict[str, int]] = field(default_factory=dict)  # per stage: samples drawn per data source


def make_optimizer(params: list[Any], cfg: OptimizerConfig) -> Any:
    torch = require("torch")
    if cfg.name == "prodigy":
        prodigyopt = require("prodigyopt", "train")
        return prodigyopt.Prodigy(
            params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, use_bias_correction=True, safeguard_warmup=True
        )
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def learning_rate(optimizer: Any) -> float:
    """The step size in effect: Prodigy's is its estimate d times lr."""
    group = optimizer.param_groups[0]
    return float(group["lr"] * group.get("d", 1.0))


def trackers(log: str) -> list[str]:
    if log == "none":
        return []
    if log == "auto":
        return [name for name, module in (("tensorboard", "tensorboard"), ("wandb", "wandb")) if importlib.util.find_spec(module)][:1]
    if importlib.util.find_spec(log) is None:
        raise UserError(f"log: {log} is not installed (pip install {log}), or use log: auto")
    return [log]


def write_preview(pipe: Any, batch: Batch, cfg: TrainConfig, path: Path) -> None:
    """The model's current image for the first batch's first sample: its layout, identities
    and prompt, a fixed seed, so previews of a run are comparable step to step."""
    from PIL import Image

    from datagen.train.generate import generate

    def u8(t: Any) -> Any:
        return ((t.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()

    image = generate(pipe, batch.prompts[0], u8(batch.control[0]), u8(batch.identities[0]), cfg.seed,
                     steps=cfg.sample_steps, guidance=cfg.sample_guidance, max_sequence_length=cfg.max_sequence_length)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def lora_state(acc: Any, model: Any, trainable: list[str]) -> dict[str, Any]:
    """The full LoRA tensors on the main process ({} elsewhere). accelerate's get_state_dict
    gathers FSDP shards, so every process must call this; under FSDP it gathers the frozen
    base too, which makes a checkpoint cost seconds on a 12B model (checkpoint_every accordingly)."""
    full = acc.get_state_dict(model)
    if not acc.is_main_process:
        return {}
    return {n: full[n].detach().cpu().contiguous() for n in trainable}


def say_mix(source: Any, index: int, said: dict[int, dict[str, int]], say: Any, main: bool) -> None:
    """Log how many samples this process drew from each data source in curriculum stage `index`
    (when the source mixes several): the mix actually drawn, not the one configured."""
    totals = source.drawn() if hasattr(source, "drawn") else {}
    before: dict[str, int] = {}
    for counts in said.values():
        for name, n in counts.items():
            before[name] = before.get(name, 0) + n
    this = {name: n - before.get(name, 0) for name, n in totals.items() if n - before.get(name, 0)}
    said[index] = this
    if main and this:
        total = sum(this.values())
        say(f"stage {index + 1} drew " + ", ".join(f"{name} {n} ({n / total:.0%})" for name, n in sorted(this.items())))


def stage_start(cfg: TrainConfig, index: int) -> int:
    return sum(s.steps for s in cfg.curriculum[:index])


def train(
    cfg: TrainConfig, source: BatchSource, out: Path, resume: bool = False,
    say: Callable[[str], None] = print, max_steps: int | None = None,
) -> TrainResult:  # fmt: skip
    """Train to the end of the curriculum (or `max_steps`, for a partial run); returns the losses."""
    accelerate = require("accelerate", "train")
    torch = require("torch")
    previous = checkpoint.latest(out)
    if previous is not None and not resume:
        raise UserError(f"{out}: holds checkpoints ({previous.name}); add --resume to go on, or choose another --out")
    acc = accelerate.Accelerator(
        gradient_accumulation_steps=cfg.grad_accum, log_with=trackers(cfg.log) or None, project_dir=str(out),
        cpu=not torch.cuda.is_available(),  # so several CPU processes (torchrun, tests) form a gloo group
    )
    pipe = load_kontext_pipeline(cfg.model, cfg.models_dir, cfg.dtype, cfg.revision)
    pipe.to(acc.device)
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(cfg.seed)  # the LoRA's initial weights
    params = add_lora(pipe.transformer, LoraSpec(cfg.lora.rank, cfg.lora.alpha, tuple(cfg.lora.targets)))
    trainable = [n for n, p in pipe.transformer.named_parameters() if p.requires_grad]
    step = 0
    if resume and previous is not None:
        # Into the plain module, before DDP/FSDP wraps (and FSDP shards) it.
        step = checkpoint.load_lora(previous, pipe.transformer)["step"]
    if cfg.gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    model, optimizer = acc.prepare(pipe.transformer, make_optimizer(params, cfg.optimizer))
    sharded = acc.distributed_type == accelerate.DistributedType.FSDP
    if resume and previous is not None:
        checkpoint.load_optimizer(previous, optimizer, rank=acc.process_index, world=acc.num_processes)
        say(f"resumed from {previous} at step {step}")
    if sharded and cfg.sample_every and acc.is_main_process:
        say("sample_every: previews are off under FSDP (generating needs every shard)")
    if acc.log_with:
        acc.init_trackers("datagen-train", config={"model": cfg.model, "lora_rank": cfg.lora.rank, "seed": cfg.seed})
    if acc.is_main_process:
        mode = str(acc.distributed_type).rsplit(".", 1)[-1]  # NO, MULTI_CPU, MULTI_GPU, FSDP, ...
        say(f"training on {acc.num_processes} process(es) ({mode}, {type(model).__name__}), {acc.device}, "
            f"{len(params)} LoRA tensors, from step {step}")  # fmt: skip
    end = min(cfg.total_steps, max_steps if max_steps is not None else cfg.total_steps)
    result = TrainResult(steps=step)
    current, batches, preview, said = -1, iter(()), None, {}
    while step < end:
        index, stage = cfg.stage_at(step)
        if index != current:
            if current >= 0:
                say_mix(source, current, said, say, acc.is_main_process)
            skip = (step - stage_start(cfg, index)) * cfg.grad_accum
            batches = source.batches(index, stage, acc.process_index, acc.num_processes, skip)
            current = index
        for micro in range(cfg.grad_accum):
            batch = next(batches)
            preview = preview or batch
            with acc.accumulate(model):
                seed = int(stage_rng(cfg.seed, "train", step, micro, acc.process_index).integers(2**63))
                generator = torch.Generator().manual_seed(seed)
                loss = step_loss(pipe, batch, generator, cfg.guidance, cfg.max_sequence_length, forward=model)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), cfg.optimizer.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
        step += 1
        value = acc.gather(loss.detach()[None]).mean().item()
        result.losses.append(value)
        acc.log({"loss": value, "lr": learning_rate(optimizer), "curriculum_stage": index}, step=step)
        if step % cfg.checkpoint_every == 0 or step == end:
            acc.wait_for_everyone()
            checkpoint.save(out, step, index, lora_state(acc, model, trainable), optimizer, rank=acc.process_index,
                            world=acc.num_processes, sharded_optimizer=sharded, barrier=acc.wait_for_everyone,
                            extra={"loss": value})  # fmt: skip
        if acc.is_main_process and cfg.sample_every and not sharded and step % cfg.sample_every == 0:
            write_preview(pipe, preview, cfg, out / "samples" / f"step-{step:08d}.png")
        if acc.is_main_process and (step % 10 == 0 or step == end):
            say(f"step {step}/{cfg.total_steps}  stage {index + 1}  loss {value:.4f}  lr {learning_rate(optimizer):.3g}")
    if current >= 0:
        say_mix(source, current, said, say, acc.is_main_process)
    result.mix = {f"stage {k + 1}": v for k, v in said.items()}
    result.steps, result.main = step, acc.is_main_process
    acc.wait_for_everyone()
    if step >= cfg.total_steps:
        final = lora_state(acc, model, trainable)  # every process: a collective under FSDP
        if acc.is_main_process:
            result.lora = save_lora(type(pipe), acc.unwrap_model(model), out / "lora", state_dict=final)
            say(f"LoRA written to {result.lora}")
    acc.end_training()
    return result
