"""The training loop shared by both stages: single process, or DDP under torchrun.

A checkpoint is a directory swapped in whole: the weights (`model.safetensors`, `config.json`),
the optimizer's tensors (`optimizer.safetensors`) and everything else as JSON
(`trainer_state.json`), so that resuming never unpickles anything. Resuming after a crash
finishes or undoes an interrupted directory swap, skips a corrupt latest checkpoint with a
warning, and drops a torn last line of `metrics.jsonl`.

The best checkpoint (`best/`) is the epoch with the lowest validation loss or, given a
`Selection`, the one whose forecasts its scorer ranks best: early stopping then follows that
metric too, and every epoch's scores are kept in the trainer state, so `--resume auto` keeps them.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kronos.forecasting.core import pick_device
from kronos.forecasting.predictor import KronosPredictor
from kronos.io import (
    check_output_dir,
    recover_interrupted_swaps,
    remove_dir,
    save_dir_atomically,
    write_atomically,
    write_text_atomically,
)
from kronos.nn.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_weights
from kronos.training.card import ModelCard
from kronos.training.config import Config, TrainConfig
from kronos.training.dataset import WindowSet, load_windows, validation_rows
from kronos.training.stages import PredictorStage, TokenizerStage, make_stage

STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
LEGACY_STATE_NAME = "trainer_state.pt"
STATE_FORMAT = 1
STATE_FIELDS = {
    "stage": str,
    "step": int,
    "epoch": int,
    "bad_epochs": int,
    "history": list,
    "scheduler": dict,
    "param_groups": list,
}
VAL_LOSS = "val_loss"  # what selects the best checkpoint without a Selection
METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "loss.png"


class CheckpointWarning(UserWarning):
    """Something left by an interrupted run was repaired or skipped."""


class UnusableCheckpoint(ValueError):
    """A checkpoint that cannot be read back: corrupt, truncated or not ours."""


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
            chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            chosen = pick_device(device)
        if chosen.type == "cuda" and chosen.index is None:  # each process its own GPU
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


@dataclass(frozen=True)
class Selection:
    """Choose the best checkpoint by its forecasts instead of its validation loss.

    After every predictor epoch the main process calls `score` with a KronosPredictor over the
    epoch's weights (on the training device) and keeps the metrics it returns in the epoch's
    record (`history[i]["forecast"]`); `metric` names the one that decides, lower is better. It
    replaces the validation loss for `best/` and for early stopping (train.patience, min_delta).
    """

    score: Callable[[KronosPredictor], Mapping[str, float]]
    metric: str


@dataclass
class TrainResult:
    """What a run produced; `module` is the trained (unwrapped) network on every rank."""

    out_dir: Path
    best_dir: Path | None  # None when no best checkpoint is on disk
    step: int
    epochs_done: int
    best_val_loss: float | None  # of the best checkpoint's epoch
    stopped_early: bool
    module: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    initial_val_loss: float | None = None  # before the first step; None without validation data
    selected_by: str = VAL_LOSS  # the validation loss, or the Selection's metric
    best_score: float | None = None  # the best checkpoint's value of `selected_by`


def epoch_windows(n_windows: int, cfg: TrainConfig, epoch: int, world_size: int) -> np.ndarray:
    """The window order of one epoch, the same on every rank, trimmed to whole global batches."""
    rng = np.random.default_rng([cfg.seed, epoch])
    if 0 < cfg.samples_per_epoch:
        order = rng.choice(n_windows, cfg.samples_per_epoch, replace=cfg.samples_per_epoch > n_windows)
    else:
        order = rng.permutation(n_windows)
    global_batch = cfg.batch_size * world_size
    return order[: len(order) // global_batch * global_batch]


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def checkpoint_dirs(out_dir: Path) -> list[Path]:
    """The epoch checkpoint directories of a run, oldest first."""
    return sorted(p for p in (out_dir / "checkpoints").glob("epoch-*") if p.is_dir())


def save_trainer_state(directory: Path, values: dict[str, Any], optimizer_state: dict[str, Any]) -> None:
    """The optimizer's per-parameter tensors as safetensors, everything else as JSON."""
    tensors = {
        f"state.{index}.{key}": value.detach().cpu().contiguous()
        for index, per_parameter in optimizer_state["state"].items()
        for key, value in per_parameter.items()
    }
    save_file(tensors, str(directory / OPTIMIZER_NAME))
    plain = {"format": STATE_FORMAT, **values, "param_groups": optimizer_state["param_groups"]}
    (directory / STATE_NAME).write_text(json.dumps(plain, indent=1) + "\n", encoding="utf-8")


def read_trainer_state(directory: Path) -> dict[str, Any]:
    """The JSON values of a checkpoint's trainer state, with `optimizer` rebuilt as a torch
    optimizer state dict from its tensors; UnusableCheckpoint naming the file when anything is
    missing, malformed or not finite."""
    path = directory / STATE_NAME
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise UnusableCheckpoint(f"{path} is unreadable: {err}") from err
    if not isinstance(values, dict) or values.get("format") != STATE_FORMAT:
        raise UnusableCheckpoint(f"{path} is not a kronos trainer state of format {STATE_FORMAT}")
    for key, kind in STATE_FIELDS.items():
        if not isinstance(values.get(key), kind) or isinstance(values.get(key), bool):
            raise UnusableCheckpoint(
                f"{path}: {key!r} must be a {kind.__name__}, got {values.get(key)!r:.60}"
            )
    best_val = values.get("best_val")
    if best_val is not None and (isinstance(best_val, bool) or not isinstance(best_val, (int, float))):
        raise UnusableCheckpoint(f"{path}: 'best_val' must be a number or null, got {best_val!r:.60}")
    if not isinstance(values.get("selected_by", VAL_LOSS), str):
        raise UnusableCheckpoint(
            f"{path}: 'selected_by' must be a metric's name, got {values['selected_by']!r:.60}"
        )
    tensors_path = directory / OPTIMIZER_NAME
    state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(str(tensors_path), framework="pt", device="cpu") as tensors:
            for name in tensors.keys():
                match = re.fullmatch(r"state\.(\d+)\.(\w+)", name)
                if match is None:
                    raise UnusableCheckpoint(f"{tensors_path}: unexpected tensor {name!r}")
                tensor = tensors.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise UnusableCheckpoint(f"{tensors_path}: tensor {name!r} is not finite")
                state.setdefault(int(match[1]), {})[match[2]] = tensor
    except (SafetensorError, OSError) as err:
        raise UnusableCheckpoint(f"{tensors_path} is unreadable: {err}") from err
    values["optimizer"] = {"state": state, "param_groups": values.pop("param_groups")}
    return values


def _legacy_state_error(directory: Path) -> ValueError:
    return ValueError(
        f"{directory} holds {LEGACY_STATE_NAME}, a pickle file written by an earlier kronos, which is never "
        f"loaded (unpickling can run code): start a new run in another train.out_dir, or continue from its "
        f"weights with model.pretrained (or tokenizer.pretrained) = '{directory}'"
    )


def _to_device(arrays, device):
    return [torch.from_numpy(a).to(device, non_blocking=True) for a in arrays]


@dataclass
class _Run:
    """What one run trains with: the stage, its network (`wrapped` for DDP), the trained
    parameters, their optimizer and learning-rate schedule."""

    stage: TokenizerStage | PredictorStage
    module: Any  # the stage's network, a Kronos or KronosTokenizer (`stage.build` says nn.Module)
    wrapped: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int


@dataclass
class _Progress:
    """Where a run stands after its last finished epoch (`epoch`, -1 before the first): what a
    checkpoint saves and a resumed run starts from."""

    step: int = 0
    epoch: int = -1
    best_val: float | None = None  # the best value of `selected_by` so far
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    selected_by: str = VAL_LOSS

    def score(self, value: float | None, min_delta: float) -> bool:
        """Count an epoch's value of `selected_by` towards early stopping; True when it is the best
        yet (a value that is not finite never is)."""
        if value is None:
            return False
        if math.isfinite(value) and (self.best_val is None or value < self.best_val - min_delta):
            self.best_val, self.bad_epochs = value, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def best_record(self) -> dict[str, Any] | None:
        """The history record of the best checkpoint's epoch (None before one, or in a history
        written before records were marked)."""
        marked = [record for record in self.history if record.get("best")]
        return marked[-1] if marked else None

    @property
    def best_val_loss(self) -> float | None:
        """The validation loss of the best checkpoint's epoch."""
        if self.selected_by == VAL_LOSS:
            return self.best_val
        record = self.best_record
        return None if record is None else record.get("val_loss")


def _check_finite(epoch: int, step: int, train_loss: float, val: dict[str, float] | None) -> None:
    """ValueError, before anything of the epoch is saved, when a loss is not finite."""
    if not math.isfinite(train_loss) or (val is not None and not math.isfinite(val["loss"])):
        val_text = f", validation loss {val['loss']}" if val is not None else ""
        raise ValueError(
            f"training diverged in epoch {epoch + 1} (step {step}): train loss {train_loss}{val_text}; "
            f"the checkpoints before it are kept. Start again with a lower train.lr or a train.grad_clip"
        )


class Trainer:
    """Trains one stage from a Config; `run()` does the epochs, checkpoints and early stopping.
    A `selection` (predictor stage only) chooses the best checkpoint by forecast metrics."""

    def __init__(
        self, config: Config, stage: str, resume: str | None = None, selection: Selection | None = None
    ):
        if selection is not None and stage != "predictor":
            raise ValueError(
                f"a selection by forecast metrics scores a predictor's forecasts: it cannot choose "
                f"{stage!r} checkpoints; train the {stage} stage without one"
            )
        self.config = config
        self.cfg = config.train_for(stage)
        self.resume = resume
        self.stage_name = stage
        self.selection = selection
        self.selected_by = VAL_LOSS if selection is None else selection.metric
        self.out_dir = Path(self.cfg.out_dir)

    def run(self) -> TrainResult:
        check_output_dir(self.out_dir, "train.out_dir")
        if self.cfg.num_threads > 0:
            torch.set_num_threads(self.cfg.num_threads)
        self.dist = Distributed.from_env(self.cfg.device)
        try:
            return self._run()
        finally:
            self.dist.close()

    def _run(self) -> TrainResult:
        series, train_set, val_set = self._load_windows()
        run = self._build(series, len(train_set))
        progress = self._start(run)
        if self.dist.is_main:
            self._announce(run, progress, len(series), len(train_set), val_set)
        if progress.step == 0 and val_set is not None:
            self._validate_before_training(run, val_set)
        stopped_early = False
        for epoch in range(progress.epoch + 1, self.cfg.epochs):
            if self._patience_spent(progress):
                stopped_early = True
                break
            self._epoch(run, progress, epoch, train_set, val_set)
            if self._patience_spent(progress) and epoch + 1 < self.cfg.epochs:
                stopped_early = True
                if self.dist.is_main:
                    print(f"early stop: {self.selected_by} has not improved for {progress.bad_epochs} epochs")
                break
        best = self.out_dir / "best"
        best_dir = best if (best / CONFIG_NAME).is_file() and (best / WEIGHTS_NAME).is_file() else None
        result = TrainResult(
            self.out_dir,
            best_dir,
            progress.step,
            progress.epoch + 1,
            progress.best_val_loss,
            stopped_early,
            run.module,
            progress.history,
            initial_val_loss(self.out_dir / METRICS_NAME),
            self.selected_by,
            progress.best_val,
        )
        if self.dist.is_main and best_dir is not None:
            card = ModelCard(
                self.config, self.stage_name, series, (len(train_set), len(val_set or ())), result
            )
            path = card.write(run.stage)
            print(f"model card: {path}")
        return result

    def _load_windows(self) -> tuple[list, WindowSet, WindowSet | None]:
        """The series and their training and validation windows; at least one global batch of
        training windows."""
        cfg, d = self.cfg, self.dist
        series, train_set, val_set = load_windows(self.config, cfg.mirror)
        if len(train_set) < cfg.batch_size * d.world_size:
            raise ValueError(
                f"only {len(train_set)} training windows, fewer than one global batch "
                f"(batch_size {cfg.batch_size} x {d.world_size} processes); use more data, a smaller "
                f"data.window or data.stride, or a smaller train.batch_size"
            )
        return series, train_set, val_set

    def _build(self, series: list, n_windows: int) -> _Run:
        """The stage's network from the seed, wrapped for DDP when distributed, its optimizer and
        its learning-rate schedule over all the epochs."""
        cfg, d = self.cfg, self.dist
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
        steps_per_epoch = len(epoch_windows(n_windows, cfg, 0, d.world_size)) // (
            cfg.batch_size * d.world_size
        )
        total_steps = steps_per_epoch * cfg.epochs
        warmup = max(1, int(cfg.warmup_fraction * total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup))
        return _Run(stage, module, wrapped, params, optimizer, scheduler, steps_per_epoch)

    def _start(self, run: _Run) -> _Progress:
        """Where the run starts: after the checkpoint resumed from (interrupted directory swaps
        finished or undone first), or at the beginning in an output directory without checkpoints."""
        if self.dist.is_main:
            for folder in (self.out_dir, self.out_dir / "checkpoints"):
                for line in recover_interrupted_swaps(folder):
                    warnings.warn(line, CheckpointWarning, stacklevel=3)
        self.dist.barrier()
        resumed = self._resume(run.module, run.optimizer, run.scheduler)
        if resumed is None:
            if checkpoint_dirs(self.out_dir):
                raise FileExistsError(
                    f"{self.out_dir} already holds checkpoints of an earlier run: continue it with --resume "
                    f"auto, or choose another train.out_dir (or delete that directory)"
                )
            return _Progress(selected_by=self.selected_by)
        checkpoint, state = resumed
        progress = _Progress(
            state["step"],
            state["epoch"],
            state["best_val"],
            state["bad_epochs"],
            state["history"],
            self.selected_by,
        )
        if self.dist.is_main:
            print(
                f"resuming {self.stage_name} from {checkpoint} (epoch {progress.epoch + 1}, step {progress.step})"
            )
        return progress

    def _announce(
        self, run: _Run, progress: _Progress, n_series: int, n_train: int, val_set: WindowSet | None
    ) -> None:
        """The output directory readied (metrics past the starting step dropped, the config
        written) and the run described in one line."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._trim_metrics(progress.step)
        write_text_atomically(self.out_dir / "config.json", json.dumps(self.config.to_dict(), indent=2))
        n_params = sum(p.numel() for p in run.params)
        print(
            f"training {self.stage_name}: {n_params:,} parameters, {n_series} series, "
            f"{n_train} train / {len(val_set) if val_set else 0} validation windows, "
            f"{run.steps_per_epoch} steps per epoch on {self.dist.world_size} x {self.dist.device}"
        )

    def _validate_before_training(self, run: _Run, val_set: WindowSet) -> None:
        """The validation loss of the network as built (new or pretrained), logged at step 0: what
        the final one is measured against."""
        val = self._validate(run, val_set)
        if self.dist.is_main:
            self._log({"split": "val", "epoch": 0, "step": 0, **{f"val_{k}": v for k, v in val.items()}})
            print(f"before training: val {val['loss']:.4f}")

    def _patience_spent(self, progress: _Progress) -> bool:
        return self.cfg.patience > 0 and progress.bad_epochs >= self.cfg.patience

    def _epoch(
        self, run: _Run, progress: _Progress, epoch: int, train_set: WindowSet, val_set: WindowSet | None
    ) -> None:
        """One epoch: trained, validated, recorded in `progress`, then (on the main process)
        logged, checkpointed and reported."""
        cfg, d = self.cfg, self.dist
        started = time.time()
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + d.rank)
        train_loss, progress.step = self._train_epoch(run, train_set, epoch, progress.step)
        val = self._validate(run, val_set) if val_set is not None else None
        _check_finite(epoch, progress.step, train_loss, val)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": progress.step,
            "train_loss": train_loss,
            "seconds": time.time() - started,
        }
        if val is not None:
            record.update({f"val_{k}": v for k, v in val.items()})
        if self.selection is not None:
            record["forecast"] = self._forecast_scores(run)
        value = record["forecast"][self.selected_by] if self.selection is not None else record.get(VAL_LOSS)
        improved = progress.score(value, cfg.min_delta)
        record["best"] = improved
        progress.history.append(record)
        progress.epoch = epoch
        if d.is_main:
            self._log({"split": "val", **record})
            self._save_checkpoint(run, progress)
            if improved or value is None:
                save_dir_atomically(self.out_dir / "best", run.module.save_pretrained)
            self._plot()
            print(self._epoch_line(record, value, improved))
        d.barrier()

    def _forecast_scores(self, run: _Run) -> dict[str, float]:
        """The selection's scores of the epoch's weights, computed on the main process; the other
        processes get the deciding metric alone (summed from the main process' value)."""
        assert self.selection is not None and isinstance(run.stage, PredictorStage)
        scores: dict[str, float] = {}
        if self.dist.is_main:
            predictor = KronosPredictor(run.module, run.stage.tokenizer, device=self.dist.device)
            scores = {name: float(value) for name, value in self.selection.score(predictor).items()}
            if self.selected_by not in scores:
                raise ValueError(
                    f"the selection metric {self.selected_by!r} is not among the scorer's metrics "
                    f"{sorted(scores)[:12]}; choose one of them"
                )
        decided = self.dist.all_sum([scores.get(self.selected_by, 0.0)])[0]
        return scores if self.dist.is_main else {self.selected_by: decided}

    def _epoch_line(self, record: dict[str, Any], value: float | None, improved: bool) -> str:
        """The line printed after an epoch: its losses, its deciding value, and whether it is the best."""
        best = " (best)" if improved else ""
        text = f"epoch {record['epoch']}/{self.cfg.epochs}: step {record['step']}, train {record['train_loss']:.4f}"
        if VAL_LOSS in record:
            text += f", val {record[VAL_LOSS]:.4f}" + (best if self.selection is None else "")
        if self.selection is not None:
            text += f", {self.selected_by} {value:.4f}{best}"
        return text + f", {record['seconds']:.1f}s"

    def _resume(self, module, optimizer, scheduler) -> tuple[Path, dict[str, Any]] | None:
        """The checkpoint resumed from and its trainer state, after loading it into the module,
        optimizer and scheduler; with --resume auto, an unreadable latest checkpoint is skipped
        with a warning for the one before it."""
        if not self.resume:
            return None
        if self.resume == "auto":
            found = checkpoint_dirs(self.out_dir)
            candidates = [c for c in reversed(found) if (c / STATE_NAME).is_file()]
            legacy = [c for c in found if (c / LEGACY_STATE_NAME).is_file()]
            if not candidates and legacy:
                raise _legacy_state_error(legacy[-1])
        else:
            path = Path(self.resume)
            if not (path / STATE_NAME).is_file():
                if (path / LEGACY_STATE_NAME).is_file():
                    raise _legacy_state_error(path)
                raise FileNotFoundError(
                    f"cannot resume from {str(path)!r}: it has no {STATE_NAME}; name a checkpoint directory "
                    f"such as {self.out_dir / 'checkpoints' / 'epoch-0001'}, or use --resume auto"
                )
            candidates = [path]
        problems = []
        for checkpoint in candidates:
            try:
                return checkpoint, self._load_checkpoint(checkpoint, module, optimizer, scheduler)
            except UnusableCheckpoint as err:
                if self.resume != "auto":
                    raise
                problems.append(str(err))
                if self.dist.is_main:
                    warnings.warn(
                        f"cannot resume from {checkpoint}: {err}; trying the checkpoint before it",
                        CheckpointWarning,
                        stacklevel=2,
                    )
        if problems:
            raise ValueError(
                f"no checkpoint in {self.out_dir / 'checkpoints'} can be resumed ({'; '.join(problems)}); "
                f"start a new run in another train.out_dir"
            )
        return None

    def _load_checkpoint(self, checkpoint: Path, module, optimizer, scheduler) -> dict[str, Any]:
        """Read a checkpoint whole, check it, then load it; UnusableCheckpoint when it cannot be."""
        state = read_trainer_state(checkpoint)
        if state["stage"] != self.stage_name:
            raise ValueError(
                f"cannot resume the {self.stage_name} stage from {checkpoint}: it is a {state['stage']} checkpoint"
            )
        selected_by = state.get("selected_by", VAL_LOSS)
        if selected_by != self.selected_by:
            raise ValueError(
                f"cannot resume from {checkpoint} selecting by {self.selected_by!r}: its run chose its best "
                f"checkpoint by {selected_by!r}; resume with the same selection, or start a new train.out_dir"
            )
        unknown = sorted(set(state["scheduler"]) - set(scheduler.state_dict()))
        if unknown:
            raise UnusableCheckpoint(f"{checkpoint / STATE_NAME}: unknown scheduler keys {unknown}")
        try:
            weights = read_weights(module, checkpoint / WEIGHTS_NAME)
        except (ValueError, OSError) as err:
            raise UnusableCheckpoint(str(err)) from err
        try:
            module.load_state_dict(weights)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
            raise UnusableCheckpoint(
                f"{checkpoint / STATE_NAME}: the optimizer or schedule does not fit this run: {err}"
            ) from err
        return state

    def _train_epoch(self, run: _Run, train_set: WindowSet, epoch: int, step: int) -> tuple[float, int]:
        """One epoch of optimizer steps on this process' share of the epoch's windows; the mean
        training loss over all processes and the step reached."""
        cfg, d = self.cfg, self.dist
        stage, wrapped, optimizer, scheduler = run.stage, run.wrapped, run.optimizer, run.scheduler
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
                torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
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
    def _validate(self, run: _Run, val_set: WindowSet) -> dict[str, float]:
        """Mean validation loss (and parts) over the fixed validation windows, summed over ranks."""
        cfg, d = self.cfg, self.dist
        stage, wrapped = run.stage, run.wrapped
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

    def _save_checkpoint(self, run: _Run, progress: _Progress) -> None:
        """The checkpoint of the epoch just finished; the oldest beyond train.keep_checkpoints removed."""

        def write(directory: Path) -> None:
            run.module.save_pretrained(directory)
            values = {
                "stage": self.stage_name,
                "step": progress.step,
                "epoch": progress.epoch,
                "best_val": progress.best_val,
                "selected_by": progress.selected_by,
                "bad_epochs": progress.bad_epochs,
                "history": progress.history,
                "scheduler": run.scheduler.state_dict(),
            }
            save_trainer_state(directory, values, run.optimizer.state_dict())

        save_dir_atomically(self.out_dir / "checkpoints" / f"epoch-{progress.epoch + 1:04d}", write)
        if self.cfg.keep_checkpoints > 0:
            for old in checkpoint_dirs(self.out_dir)[: -self.cfg.keep_checkpoints]:
                remove_dir(old)

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out_dir / METRICS_NAME, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _trim_metrics(self, step: int) -> None:
        """Drop metrics logged after `step` (an interrupted run's tail, torn lines included)
        before continuing from it."""
        path = self.out_dir / METRICS_NAME
        if not path.exists():
            return
        kept = [record for record in read_metrics(path) if record["step"] <= step] if step > 0 else []
        write_text_atomically(path, "".join(json.dumps(record) + "\n" for record in kept), "metrics")

    def _plot(self) -> None:
        records = read_metrics(self.out_dir / METRICS_NAME)
        plot_losses(records, self.out_dir / PLOT_NAME, f"Kronos {self.stage_name} training")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; unreadable lines (a write cut short tears the last one)
    are dropped with a warning."""
    records, dropped = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            record = None
        if (
            isinstance(record, dict)
            and record.get("split") in ("train", "val")
            and type(record.get("step")) is int
        ):
            records.append(record)
        else:
            dropped.append(number)
    if dropped:
        warnings.warn(
            f"{path}: dropped unreadable line(s) {dropped} (a write cut short by a crash or a full disk tears the last one)",
            CheckpointWarning,
            stacklevel=2,
        )
    return records


def initial_val_loss(path: Path) -> float | None:
    """The validation loss logged before the first step (`metrics.jsonl`), if any."""
    if not path.is_file():
        return None
    first = [r for r in read_metrics(path) if r["split"] == "val" and r["step"] == 0 and "val_loss" in r]
    return float(first[0]["val_loss"]) if first else None


def plot_losses(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Training loss per logging interval and validation loss per epoch, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r["split"] == "train" and "loss" in r]
    val = [r for r in records if r["split"] == "val" and "val_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1, alpha=0.8, label="train")
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", lw=2, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100), "plot")
    finally:
        plt.close(fig)


def train(
    config: Config, stage: str, resume: str | None = None, selection: Selection | None = None
) -> TrainResult:
    """Train `stage` ('tokenizer' or 'predictor'); under torchrun every process calls this.
    `selection` chooses the predictor's best checkpoint by forecast metrics (see Selection)."""
    return Trainer(config, stage, resume, selection).run()
