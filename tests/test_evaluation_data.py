"""kronos.evaluation.data: series read from long tables, lists of files and folders."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import random_walk_bars

from kronos.evaluation import Backtest, evaluate, read_series
from kronos.forecasting.series import CLOSE


def test_long_table_with_id_column_and_several_files(tmp_path):
    a, b = random_walk_bars(50, seed=5), random_walk_bars(70, seed=6)
    long = pd.concat([a.assign(symbol="AAA"), b.assign(symbol="BBB")]).sample(frac=1, random_state=0)
    long.to_csv(tmp_path / "long.csv", index=False)
    series = read_series(tmp_path / "long.csv", id_column="symbol")
    assert sorted(series) == ["AAA", "BBB"]
    assert series["BBB"].bars[:, CLOSE] == pytest.approx(b["close"].to_numpy())
    folder = tmp_path / "symbols"
    folder.mkdir()
    a.to_csv(folder / "AAA.csv", index=False)
    b.to_parquet(folder / "BBB.parquet")
    (folder / "notes.md").write_text("not data")
    files = read_series([folder / "AAA.csv", folder / "BBB.parquet"])
    assert sorted(files) == ["AAA", "BBB"] and len(files["BBB"]) == 70
    from_folder = read_series(folder)
    assert sorted(from_folder) == ["AAA", "BBB"]
    assert from_folder["AAA"].bars[:, CLOSE] == pytest.approx(a["close"].to_numpy())
    with pytest.warns(UserWarning, match="AAA"):
        result = evaluate(files, None, Backtest(lookback=40, steps=15, every=5), progress=False)
    assert set(result.origins["series"]) == {"BBB"} and "AAA" in result.skipped
