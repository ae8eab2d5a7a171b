"""scripts/train_default_model.py: the `temperature` step, which scores the predictor's best
checkpoint at each configured temperature on the validation origins and ships the best one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import load_script, tiny_config

from kronos.evaluation.selection import POOLED
from kronos.forecasting.predictor import KronosPredictor

torch.set_num_threads(1)
METADATA = {
    "max_context": 64,
    "history": 20,
    "frequencies": ["h"],
    "tokenizer": "../../tokenizer/best",  # as training records it: relative to the checkpoint
    "sampling": {"temperature": 1.0, "top_p": 0.9},
    "anchor": True,
    "series": 2,
}


@pytest.fixture(scope="module")
def script():
    return load_script("train_default_model")


@pytest.fixture
def run_dir(tmp_path, tiny_dir) -> Path:
    """A finished run in tmp_path/run: the tiny checkpoint as the predictor's best (with its
    kronos.json) and its tokenizer as the tokenizer's best."""
    run = tmp_path / "run"
    shutil.copytree(tiny_dir / "model", run / "predictor" / "best")
    shutil.copytree(tiny_dir / "tokenizer", run / "tokenizer" / "best")
    (run / "predictor" / "best" / "kronos.json").write_text(json.dumps(METADATA))
    return run


def written(run_dir: Path) -> dict:
    return json.loads((run_dir / "predictor" / "best" / "kronos.json").read_text())


@pytest.mark.parametrize("metric", ["crps_ratio", "hourly/cover_95"])
def test_the_lowest_temperature_is_written_and_its_scores_are_the_shipped_models(
    script, tmp_path, csv_files, run_dir, metric
):
    score = script.forecast_scores(tiny_config(tmp_path, csv_files), origins=6, paths=8)
    chosen, table = script.choose_temperature(score, metric, run_dir, [2.0, 0.5, 1.0])
    family, name = metric.split("/") if "/" in metric else ("all", metric)
    rows = table[table["family"] == family].set_index("temperature")
    assert list(rows.index) == [2.0, 0.5, 1.0]
    assert chosen == rows[name].idxmin()
    assert rows[name].nunique() > 1  # the temperature reaches the sampling
    assert list(table.loc[table["chosen"], "temperature"].unique()) == [chosen]
    assert set(table[table["family"] == "all"].columns) >= {"temperature", "chosen", *POOLED}
    assert written(run_dir) == {**METADATA, "sampling": {"temperature": chosen, "top_p": 0.9}}
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "predictor" / "temperature.csv"), table)
    # what the checkpoint now forecasts with by default is what was scored
    shipped = score(KronosPredictor.from_pretrained(str(run_dir / "predictor" / "best"), device="cpu"))
    chosen_row = rows.loc[chosen]
    assert shipped[metric] == pytest.approx(chosen_row[name], rel=1e-12)


def write_config(tmp_path: Path, csv_files: list[Path], run_dir: Path, sampling: str) -> Path:
    path = tmp_path / "config.toml"
    paths = ", ".join(f'"{p}"' for p in csv_files)
    path.write_text(
        f"[data]\npaths = [{paths}]\nwindow = 24\nhistory = 20\nval_fraction = 0.2\n"
        f'[train]\nout_dir = "{run_dir}"\ndevice = "cpu"\nseed = 3\n'
        # main() sets torch's threads from the config: one, as this module and the trainer's tests run
        f"num_threads = 1\n[sampling]\n{sampling}\n"
    )
    return path


def test_the_step_runs_alone_on_a_finished_run(script, tmp_path, csv_files, run_dir, capsys):
    config = write_config(tmp_path, csv_files, run_dir, "temperatures = [0.7, 1.3]")
    argv = ["--config", str(config), "--steps", "temperature", "--select-origins", "6", "--select-paths", "8"]
    script.main(argv)
    table = pd.read_csv(run_dir / "predictor" / "temperature.csv")
    pooled = table[table["family"] == "all"].set_index("temperature")["crps_ratio"]
    assert list(pooled.index) == [0.7, 1.3]
    assert written(run_dir)["sampling"] == {"temperature": pooled.idxmin(), "top_p": 0.9}
    assert f"temperature: {pooled.idxmin():g} has the lowest crps_ratio" in capsys.readouterr().out


def test_without_temperatures_the_checkpoint_keeps_its_own(script, tmp_path, csv_files, run_dir, capsys):
    config = write_config(tmp_path, csv_files, run_dir, "temperature = 1.0")
    script.main(["--config", str(config), "--steps", "temperature"])
    assert written(run_dir) == METADATA
    assert not (run_dir / "predictor" / "temperature.csv").exists()
    assert "no [sampling] temperatures configured" in capsys.readouterr().out
