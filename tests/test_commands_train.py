"""`kronos train`: both stages from the command line, and its errors."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
import torch
from helpers import calm_bars

from kronos.commands.main import main

torch.set_num_threads(1)


def test_train_command_trains_both_stages(tmp_path, capsys):
    for i in range(2):
        calm_bars(260, "h", seed=i).to_csv(tmp_path / f"s{i}.csv", index=False)
    common = [
        "--data", str(tmp_path / "s*.csv"), "--out", str(tmp_path / "run"),
        "--set", "data.window=24", "--set", "data.history=20", "--set", "data.val_fraction=0.2",
        "--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "train.samples_per_epoch=32",
        "--set", "train.progress=false", "--set", "train.device='cpu'",
        "--set", "tokenizer.d_model=16", "--set", "tokenizer.s1_bits=3", "--set", "tokenizer.s2_bits=3",
        "--set", "tokenizer.group_size=3", "--set", "model.d_model=16", "--set", "model.n_layers=1",
    ]  # fmt: skip
    assert main(["train", "tokenizer", *common]) == 0
    assert main(["train", "predictor", *common]) == 0
    out = capsys.readouterr().out
    assert "tokenizer trained: 4 steps" in out and "predictor trained: 4 steps" in out
    best = tmp_path / "run" / "predictor" / "best"
    assert (best / "model.safetensors").is_file()
    check_the_loop_is_closed(tmp_path, best, out, capsys)
    assert main(["train", "tokenizer", *common]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main(["train", "tokenizer", *common, "--set", "train.lrr=1"]) == 2
    assert "unknown key(s) ['train.lrr']" in capsys.readouterr().err


def check_the_loop_is_closed(tmp_path, best, out, capsys):
    """The trained predictor records its tokenizer and forecasts with --model DIR alone, from
    anywhere the run folder is moved to; the losses before training and the card hold real numbers."""
    metadata = json.loads((best / "kronos.json").read_text())
    assert metadata["tokenizer"] == "../../tokenizer/best"  # relative: the run folder can move whole
    before = re.search(
        r"predictor trained: 4 steps, validation loss ([0-9.]+) before training, best ([0-9.]+)", out
    )
    assert before is not None and float(before[1]) > float(before[2]) > 0
    moved = shutil.copytree(tmp_path / "run", tmp_path / "moved")
    forecast = tmp_path / "f.csv"
    data = tmp_path / "s0.csv"
    assert (
        main(
            [
                "forecast",
                str(data),
                "--steps",
                "3",
                "--model",
                str(moved / "predictor" / "best"),
                "--out",
                str(forecast),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(forecast)) == 3
    capsys.readouterr()
    card = (best / "README.md").read_text()
    records = [json.loads(line) for line in (best.parent / "metrics.jsonl").read_text().splitlines()]
    initial = next(r for r in records if r["split"] == "val" and r["step"] == 0)
    final = [r for r in records if r["split"] == "val"][-1]
    assert f"Validation loss before the first step: **{initial['val_loss']:.4f}**" in card
    assert f"after the last epoch: **{final['val_loss']:.4f}**" in card
    assert float(before[1]) == pytest.approx(initial["val_loss"], abs=1e-4)
    assert "2 series, 520 bars" in card and "| s0 | 260 |" in card and "| h |" in card
    assert re.search(r"\| s0 \| \d+ \| [0-9.e+-]+ \| [0-9.e+-]+ \| [0-9.]+ \| [0-9.]+ \|", card), card
    assert (
        "Mean MAE ratio" in card
        and '"batch_size": 8' in card
        and "kronos forecast prices.csv --steps 4" in card
    )
    assert "TODO" not in card and "placeholder" not in card.lower()
    tokenizer_card = (best.parents[1] / "tokenizer" / "best" / "README.md").read_text()
    assert "Validation loss before the first step: **" in tokenizer_card and "| 1 | 4 |" in tokenizer_card
