"""The training loop shared by both stages: single process, or DDP under torchrun."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..predictor import pick_device
from .config import Config, TrainConfig
from .dataset import WindowSet, load_windows
from .stages import make_stage

STATE_NAME = "trainer_state.pt"
METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "loss.png"


@dataclass
class Distributed:
    """Rank, world size and device of this process; torchrun sets RANK, WORLD_SIZE and LOCAL_RANK."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @classmethod
    def from_env(cls, device: str) -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            chosen = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        else:
            chosen = pick_device(device)
            if chosen.type == "cuda" and world_size > 1 and chosen.index is None:
                chosen = torch.device(f"cuda:{local_rank}")
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        owns_group = False
        if world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
            owns_group = True
        return cls(rank, world_size, local_rank, chosen, owns_group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all ranks (float64)."""
        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()


@dataclass
class TrainResult:
    """What a run produced; `module` is the trained (unwrapped) network on every rank."""

    out_dir: Path
    best_dir: Path
    step: int
    epochs_done: int
    best_val_loss: float | None
    stopped_early: bool
    module: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)


def epoch_windows(n_windows: int, cfg: TrainConfig, epoch: int, world_size: int) -> np.ndarray:
    """The window order of one epoch, the same on every rank, trimmed to whole global batches."""
    rng = np.random.default_rng([cfg.seed, epoch])
    if 0 < cfg.samples_per_epoch:
        order = rng.choice(n_windows, cfg.samples_per_epoch, replace=cfg.samples_per_epoch > n_windows)
    else:
        order = rng.permutation(n_windows)
    global_batch = cfg.batch_size * world_size
    return order[: len(order) // global_batch * global_batch]


def validation_rows(n_windows: int, cfg: TrainConfig) -> np.ndarray:
    """A fixed, evenly spread subset of validation windows (all when val_samples is 0)."""
    if 0 < cfg.val_samples < n_windows:
        return np.unique(np.linspace(0, n_windows - 1, cfg.val_samples).round().astype(np.int64))
    return np.arange(n_windows)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def latest_checkpoint(out_dir: Path) -> Path | None:
    checkpoints = sorted((out_dir / "checkpoints").glob("epoch-*"))
    checkpoints = [c for c in checkpoints if (c / STATE_NAME).is_file()]
    return checkpoints[-1] if checkpoints else None


def _save_dir_atomically(target: Path, write) -> None:
    """Write a directory next to `target`, then swap it in, so a crash never leaves half of one."""
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _to_device(arrays, device):
    return [torch.from_numpy(a).to(device, non_blocking=True) for a in arrays]


class Trainer:
    """Trains one stage from a Config; `run()` does the epochs, checkpoints and early stopping."""

    def __init__(self, config: Config, stage: str, resume: str | None = None):
        self.config = config
        self.cfg = config.train_for(stage)
        self.resume = resume
        self.stage_name = stage
        self.out_dir = Path(self.cfg.out_dir)

    def run(self) -> TrainResult:
        if self.cfg.num_threads > 0:
            torch.set_num_threads(self.cfg.num_threads)
        self.dist = Distributed.from_env(self.cfg.device)
        try:
            return self._run()
        finally:
            self.dist.close()

    def _run(self) -> TrainResult:
        cfg, d = self.cfg, self.dist
        series, train_set, val_set = load_windows(self.config)
        if len(train_set) < cfg.batch_size * d.world_size:
            raise ValueError(
                f"only {len(train_set)} training windows, fewer than one global batch "
                f"(batch_size {cfg.batch_size} x {d.world_size} processes); use more data, a smaller "
                f"data.window or data.stride, or a smaller train.batch_size"
            )
        torch.manual_seed(cfg.seed)
        stage = make_stage(self.stage_name, self.config, d.device)
        module = stage.build(series)
        wrapped = (
            DistributedDataParallel(module, device_ids=[d.device.index] if d.device.type == "cuda" else None)
            if d.world_size > 1
            else module
        )
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.betas[0], cfg.betas[1])
        )
        steps_per_epoch = len(epoch_windows(len(train_set), cfg, 0, d.world_size)) // (
            cfg.batch_size * d.world_size
        )
        total_steps = steps_per_epoch * cfg.epochs
        warmup = max(1, int(cfg.warmup_fraction * total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup))

        step, start_epoch, best_val, bad_epochs, history = 0, 0, None, 0, []
        checkpoint = self._resume_checkpoint()
        if checkpoint is None and latest_checkpoint(self.out_dir) is not None:
            raise FileExistsError(
                f"{self.out_dir} already holds checkpoints of an earlier run: continue it with --resume auto, "
                f"or choose another train.out_dir (or delete that directory)"
            )
        if checkpoint is not None:
            state = torch.load(checkpoint / STATE_NAME, map_location=d.device, weights_only=False)
            if state["stage"] != self.stage_name:
                raise ValueError(
                    f"cannot resume the {self.stage_name} stage from {checkpoint}: it is a {state['stage']} checkpoint"
                )
            module.load_state_dict(load_file(checkpoint / "model.safetensors", device=str(d.device)))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step, start_epoch = state["step"], state["epoch"] + 1
            best_val, bad_epochs, history = state["best_val"], state["bad_epochs"], state["history"]
            if d.is_main:
                print(
                    f"resuming {self.stage_name} from {checkpoint} (epoch {state['epoch'] + 1}, step {step})"
                )
        if d.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._trim_metrics(step)
            (self.out_dir / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            n_params = sum(p.numel() for p in params)
            print(
                f"training {self.stage_name}: {n_params:,} parameters, {len(series)} series, "
                f"{len(train_set)} train / {len(val_set) if val_set else 0} validation windows, "
                f"{steps_per_epoch} steps per epoch on {d.world_size} x {d.device}"
            )
        stopped_early = False
        epoch = start_epoch - 1
        for epoch in range(start_epoch, cfg.epochs):
            if cfg.patience > 0 and bad_epochs >= cfg.patience:
                stopped_early = True
                break
            started = time.time()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + d.rank)
            train_loss, step = self._train_epoch(
                stage, wrapped, params, optimizer, scheduler, train_set, epoch, step
            )
            val = self._validate(stage, wrapped, val_set) if val_set is not None else None
            improved = val is not None and (best_val is None or val["loss"] < best_val - cfg.min_delta)
            if val is not None and improved:
                best_val, bad_epochs = val["loss"], 0
            elif val is not None:
                bad_epochs += 1
            record = {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": train_loss,
                "seconds": time.time() - started,
            }
            if val is not None:
                record.update({f"val_{k}": v for k, v in val.items()})
            history.append(record)
            if d.is_main:
                self._log({"split": "val", **record})
                self._save_checkpoint(
                    module, optimizer, scheduler, step, epoch, best_val, bad_epochs, history
                )
                if improved or val is None:
                    _save_dir_atomically(self.out_dir / "best", module.save_pretrained)
                self._plot()
                val_text = f", val {val['loss']:.4f}{' (best)' if improved else ''}" if val else ""
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: step {step}, train {train_loss:.4f}{val_text}, "
                    f"{record['seconds']:.1f}s"
                )
            d.barrier()
            if cfg.patience > 0 and bad_epochs >= cfg.patience and epoch + 1 < cfg.epochs:
                stopped_early = True
                if d.is_main:
                    print(f"early stop: validation loss has not improved for {bad_epochs} epochs")
                break
        return TrainResult(
            self.out_dir, self.out_dir / "best", step, epoch + 1, best_val, stopped_early, module, history
        )

    def _resume_checkpoint(self) -> Path | None:
        if not self.resume:
            return None
        if self.resume == "auto":
            return latest_checkpoint(self.out_dir)
        path = Path(self.resume)
        if not (path / STATE_NAME).is_file():
            raise FileNotFoundError(
                f"cannot resume from {str(path)!r}: it has no {STATE_NAME}; name a checkpoint directory "
                f"such as {self.out_dir / 'checkpoints' / 'epoch-0001'}, or use --resume auto"
            )
        return path

    def _train_epoch(self, stage, wrapped, params, optimizer, scheduler, train_set: WindowSet, epoch, step):
        cfg, d = self.cfg, self.dist
        order = epoch_windows(len(train_set), cfg, epoch, d.world_size)
        mine = order[d.rank :: d.world_size]
        n_steps = len(mine) // cfg.batch_size
        wrapped.train()
        bar = None
        if d.is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, desc=f"{self.stage_name} epoch {epoch + 1}/{cfg.epochs}", leave=False)
        total, window_losses = 0.0, []
        window_parts: dict[str, list[float]] = {k: [] for k in stage.loss_parts}
        for i in range(n_steps):
            x, stamp = _to_device(
                train_set.batch(mine[i * cfg.batch_size : (i + 1) * cfg.batch_size]), d.device
            )
            loss, parts = stage.loss(wrapped, x, stamp)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            value = loss.item()
            total += value
            window_losses.append(value)
            for k, v in parts.items():
                window_parts[k].append(v.item())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
            if d.is_main and (step % cfg.log_every == 0 or i == n_steps - 1):
                self._log(
                    {
                        "split": "train",
                        "epoch": epoch + 1,
                        "step": step,
                        "loss": float(np.mean(window_losses)),
                        **{k: float(np.mean(v)) for k, v in window_parts.items()},
                        "lr": scheduler.get_last_lr()[0],
                    }
                )
                window_losses, window_parts = [], {k: [] for k in stage.loss_parts}
        if bar is not None:
            bar.close()
        summed, count = self.dist.all_sum([total, n_steps])
        return summed / count, step

    @torch.no_grad()
    def _validate(self, stage, wrapped, val_set: WindowSet) -> dict[str, float]:
        """Mean validation loss (and parts) over the fixed validation windows, summed over ranks."""
        cfg, d = self.cfg, self.dist
        rows = validation_rows(len(val_set), cfg)[d.rank :: d.world_size]
        module = wrapped.module if isinstance(wrapped, DistributedDataParallel) else wrapped
        stage.eval_mode(module)
        sums = np.zeros(1 + len(stage.loss_parts))
        for i in range(0, len(rows), cfg.batch_size):
            chunk = rows[i : i + cfg.batch_size]
            x, stamp = _to_device(val_set.batch(chunk), d.device)
            loss, parts = stage.loss(module, x, stamp)
            sums += len(chunk) * np.array([loss.item()] + [parts[k].item() for k in stage.loss_parts])
        totals = self.dist.all_sum([*sums.tolist(), float(len(rows))])
        means = np.array(totals[:-1]) / max(totals[-1], 1.0)
        return dict(zip(("loss", *stage.loss_parts), means.tolist()))

    def _save_checkpoint(self, module, optimizer, scheduler, step, epoch, best_val, bad_epochs, history):
        def write(directory: Path) -> None:
            module.save_pretrained(directory)
            state = {
                "step": step,
                "epoch": epoch,
                "best_val": best_val,
                "bad_epochs": bad_epochs,
                "history": history,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "stage": self.stage_name,
            }
            torch.save(state, directory / STATE_NAME)

        checkpoints = self.out_dir / "checkpoints"
        _save_dir_atomically(checkpoints / f"epoch-{epoch + 1:04d}", write)
        if self.cfg.keep_checkpoints > 0:
            for old in sorted(checkpoints.glob("epoch-*"))[: -self.cfg.keep_checkpoints]:
                shutil.rmtree(old)

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out_dir / METRICS_NAME, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _trim_metrics(self, step: int) -> None:
        """Drop metrics logged after `step` (an interrupted run's tail) before continuing from it."""
        path = self.out_dir / METRICS_NAME
        if not path.exists():
            return
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))

    def _plot(self) -> None:
        records = read_metrics(self.out_dir / METRICS_NAME)
        plot_losses(records, self.out_dir / PLOT_NAME, f"Kronos {self.stage_name} training")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def plot_losses(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Training loss per logging interval and validation loss per epoch, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1, alpha=0.8, label="train")
    if val and "val_loss" in val[0]:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", lw=2, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def train(config: Config, stage: str, resume: str | None = None) -> TrainResult:
    """Train `stage` ('tokenizer' or 'predictor'); under torchrun every process calls this."""
    return Trainer(config, stage, resume).run()
