"""The model card `kronos train` writes beside a best checkpoint (`best/README.md`): the data it
was trained on, its settings, its losses before and after training and, for a predictor, its
held-out forecasts against persistence. Every number in it is measured by the run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.schedules import bar_spacing
from kronos.forecasting.series import Series
from kronos.io import write_text_atomically
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer
from kronos.training.config import Config
from kronos.training.dataset import split_point
from kronos.training.evaluation import forecast_errors
from kronos.version import __version__

CARD_NAME = "README.md"
LISTED_SERIES = 50  # rows of the data table; the rest are counted
CARD_ORIGINS, CARD_PATHS = 12, 16  # held-out forecasts per series and paths per forecast


class FinishedRun(Protocol):
    """What a card reads of a run's result (`kronos.training.trainer.TrainResult`)."""

    out_dir: Path
    best_dir: Path | None
    step: int
    epochs_done: int
    best_val_loss: float | None
    stopped_early: bool
    history: list[dict[str, Any]]
    initial_val_loss: float | None


@dataclass(frozen=True)
class ModelCard:
    """What a finished run knows about itself: config, stage, series, (training, validation)
    window counts and its result."""

    config: Config
    stage: str
    series: list[Series]
    windows: tuple[int, int]
    result: FinishedRun

    def write(self, stage: Any) -> Path:
        """Write the card into the best checkpoint's directory; `stage` is the run's stage object
        (a predictor stage holds the tokenizer its held-out forecasts decode with)."""
        assert self.result.best_dir is not None
        sections = [self.header(), self.data(), self.losses()]
        tokenizer = getattr(stage, "tokenizer", None)
        if self.stage == "predictor" and tokenizer is not None:
            sections.append(self.evaluation(tokenizer))
        sections.append(self.settings())
        path = self.result.best_dir / CARD_NAME
        write_text_atomically(path, "\n\n".join(sections) + "\n", "model card")
        return path

    def header(self) -> str:
        best = self.result.best_dir
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        use = (
            f"```bash\nkronos forecast prices.csv --steps {self.horizon} --model {best}\n```\n\n"
            f'```python\nfrom kronos import KronosPredictor\npredictor = KronosPredictor.from_pretrained("{best}")\n```'
            if self.stage == "predictor"
            else f'Train a predictor on it with `model.tokenizer = "{best}"` in the training config.'
        )
        return f"# Kronos {self.stage}: {Path(self.result.out_dir).parent.name}\n\nTrained by `kronos train {self.stage}` (kronos {__version__}) on {when}.\n\n{use}"

    @property
    def horizon(self) -> int:
        """The forecast part of a training window: what the model learnt to forecast."""
        return self.config.data.window - self.config.data.history_len()

    def data(self) -> str:
        data, (train, val) = self.config.data, self.windows
        bars = sum(len(one) for one in self.series)
        rows = [
            f"| {one.name} | {len(one):,} | {one.timestamps[0]} | {one.timestamps[-1]} | {bar_spacing(one.timestamps) or 'irregular'} |"
            for one in self.series[:LISTED_SERIES]
        ]
        more = len(self.series) - LISTED_SERIES
        return "\n".join(
            [
                "## Data",
                "",
                f"{len(self.series)} series, {bars:,} bars; {train:,} training and {val:,} validation windows of "
                f"{data.window} bars ({data.history_len()} of history, normalised on them), stride {data.stride}; "
                f"the last {data.val_fraction:.0%} of each series held out for validation.",
                "",
                "| series | bars | first bar | last bar | spacing |",
                "|---|---|---|---|---|",
                *rows,
                *([f"| ... and {more} more | | | | |"] if more > 0 else []),
            ]
        )

    def losses(self) -> str:
        result = self.result
        before = (
            "n/a (no validation data)"
            if result.initial_val_loss is None
            else f"{result.initial_val_loss:.4f}"
        )
        best = "n/a" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
        final = result.history[-1].get("val_loss") if result.history else None
        rows = [
            f"| {r['epoch']} | {r['step']} | {r['train_loss']:.4f} | "
            f"{'' if r.get('val_loss') is None else format(r['val_loss'], '.4f')} |"
            for r in result.history
        ]
        stop = " (stopped early: validation loss no longer improving)" if result.stopped_early else ""
        return "\n".join(
            [
                "## Losses",
                "",
                f"Validation loss before the first step: **{before}**; after the last epoch: "
                f"**{'n/a' if final is None else format(final, '.4f')}**; best: **{best}** (the weights kept "
                f"here). {result.epochs_done} epochs, {result.step:,} steps{stop}.",
                "",
                "| epoch | step | train loss | validation loss |",
                "|---|---|---|---|",
                *rows,
            ]
        )

    def evaluation(self, tokenizer: KronosTokenizer) -> str:
        """Close forecasts from the best weights at origins in each series' held-out part, against
        persistence (the last close), seeded by train.seed."""
        assert self.result.best_dir is not None
        model = Kronos.from_pretrained(str(self.result.best_dir))
        predictor = KronosPredictor(model, tokenizer, device="cpu")
        history, horizon = self.config.data.history_len(), self.horizon
        torch.manual_seed(self.config.train.seed)
        rows, skipped = [], []
        for one in self.series:
            split = split_point(len(one), self.config.data.val_fraction)
            try:
                scores = forecast_errors(predictor, one, split, history, horizon, CARD_ORIGINS, CARD_PATHS)
            except ValueError:
                skipped.append(one.name)
                continue
            rows.append(scores)
        lines = [
            "## Held-out forecasts",
            "",
            f"{horizon}-step close forecasts from {history} bars of history at up to {CARD_ORIGINS} origins in "
            f"each series' held-out part ({CARD_PATHS} paths each): mean absolute error of the mean path "
            "against persistence (the last close) and the share of outcomes inside the 80% band.",
            "",
        ]
        if not rows:
            return "\n".join([*lines, "No series has room for a forecast in its held-out part."])
        ratio = float(np.mean([r["mae_ratio"] for r in rows]))
        table = [
            f"| {r['series']} | {r['forecasts']} | {r['mae_close_model']:.6g} | {r['mae_close_persistence']:.6g} | "
            f"{r['mae_ratio']:.3f} | {r['band80_coverage']:.2f} |"
            for r in rows[:LISTED_SERIES]
        ]
        verdict = "beats" if ratio < 1 else "does not beat"
        return "\n".join(
            [
                *lines,
                "| series | forecasts | MAE model | MAE persistence | ratio | 80% band coverage |",
                "|---|---|---|---|---|---|",
                *table,
                "",
                f"Mean MAE ratio {ratio:.3f}: on this data the model {verdict} persistence on average "
                f"({sum(r['mae_ratio'] < 1 for r in rows)} of {len(rows)} series below 1)."
                + (f" Too short to forecast in: {', '.join(skipped[:10])}." if skipped else "")
                + " Run `kronos evaluate --calibrate` on data the model never saw before trusting it.",
            ]
        )

    def settings(self) -> str:
        values: dict[str, Any] = self.config.to_dict()
        return f"## Settings\n\n```json\n{json.dumps(values, indent=2)}\n```"
