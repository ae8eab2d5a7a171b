"""`kronos train`: both stages from the command line, and its errors."""

from __future__ import annotations

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
    assert (tmp_path / "run" / "predictor" / "best" / "model.safetensors").is_file()
    assert main(["train", "tokenizer", *common]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main(["train", "tokenizer", *common, "--set", "train.lrr=1"]) == 2
    assert "unknown key(s) ['train.lrr']" in capsys.readouterr().err
