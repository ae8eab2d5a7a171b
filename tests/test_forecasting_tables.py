"""kronos.forecasting.tables: splitting long tables into series, table layouts, and reading files
(CSV with any separator, Parquet) with errors that name the file and the line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import make_bars, random_bars

from kronos.commands.main import main
from kronos.forecasting.series import SyntheticOHLCWarning
from kronos.forecasting.tables import TableLayout, load_series, split_table
from kronos.training.config import config_from_dict

torch.set_num_threads(1)


def test_split_table_as_given_keeps_first_appearance_order_and_dtypes():
    stamps = pd.date_range("2024-01-01", periods=4, freq="D")
    frame = pd.DataFrame(
        {
            "id": [7, 3, 7, 3, 7, 3, 7, 3],
            "timestamps": np.repeat(stamps, 2),
            "open": np.arange(8.0) + 1,
            "high": np.arange(8.0) + 2,
            "low": np.arange(8.0),
            "close": np.arange(8.0) + 1,
        },
        index=[5, 5, 6, 6, 7, 7, 8, 8],  # duplicate labels must not matter
    )
    series = split_table(frame, "df", as_given=True)
    assert [s.key for s in series] == [7, 3]
    np.testing.assert_array_equal(series[0].bars[:, 0], [1, 3, 5, 7])
    np.testing.assert_array_equal(series[1].bars[:, 4], [0, 0, 0, 0])  # no volume column: volume 0
    assert list(series[1].timestamps) == list(stamps)


def test_split_table_of_a_file_sorts_each_series_by_time_and_keys_ids_as_text_in_id_order():
    stamps = pd.date_range("2024-01-01", periods=3, freq="D")
    frame = pd.DataFrame(
        {
            "Sym": [10, 2, 10, 2, 10, 2],  # interleaved, each series out of time order
            "Date": [stamps[2], stamps[1], stamps[0], stamps[0], stamps[1], stamps[2]],
            "Open": [3.0, 20.0, 1.0, 10.0, 2.0, 30.0],
            "High": [4.0, 21.0, 2.0, 11.0, 3.0, 31.0],
            "Low": [2.0, 19.0, 0.5, 9.0, 1.0, 29.0],
            "Close": [3.5, 20.5, 1.5, 10.5, 2.5, 30.5],
        }
    )
    series = split_table(frame, "f.csv", TableLayout(id_column="Sym"))
    assert [(s.key, s.name) for s in series] == [("2", "f.csv[Sym=2]"), ("10", "f.csv[Sym=10]")]
    np.testing.assert_array_equal(series[0].bars[:, 3], [10.5, 20.5, 30.5])
    np.testing.assert_array_equal(series[1].bars[:, 3], [1.5, 2.5, 3.5])
    assert all(list(s.timestamps) == list(stamps) for s in series)
    assert series[0].columns == ("open", "high", "low", "close")
    with pytest.raises(
        ValueError, match=r"f.csv has duplicate rows: 1 timestamp .* within a series, first Sym=10"
    ):
        split_table(
            frame.assign(Date=frame["Date"].where(frame.index != 0, stamps[0])), "f.csv", TableLayout("Sym")
        )


def test_split_table_builds_bars_from_closes_series_by_series():
    stamps = pd.date_range("2024-01-01", periods=3, freq="D")
    frame = pd.DataFrame(
        {
            "symbol": ["a", "b"] * 3,
            "timestamps": np.repeat(stamps, 2),
            "close": [1.0, 10.0, 2.0, 9.0, 4.0, 12.0],
        }
    )
    with pytest.warns(SyntheticOHLCWarning, match="f.csv: open, high and low of 2 series"):
        a, b = split_table(frame, "f.csv", TableLayout("symbol", from_close=True))
    np.testing.assert_array_equal(a.bars[:, :4], [[1, 1, 1, 1], [1, 2, 1, 2], [2, 4, 2, 4]])
    np.testing.assert_array_equal(b.bars[:, :4], [[10, 10, 10, 10], [10, 10, 9, 9], [9, 12, 9, 12]])
    assert a.synthetic_ohlc and b.synthetic_ohlc and a.columns == ("close",)


def test_long_table_with_id_column_and_column_map(tmp_path):
    frames = []
    for symbol, seed in (("AAA", 1), ("BBB", 2)):
        df = make_bars(50, seed).rename(columns={"close": "Last", "timestamps": "Date", "open": "Open"})
        df["ticker"] = symbol
        frames.append(df)
    table = pd.concat(frames).sample(frac=1.0, random_state=0)  # shuffled rows: each series is sorted by time
    path = tmp_path / "long.csv"
    table.to_csv(path, index=False)
    series = load_series([path], TableLayout(id_column="ticker", column_map={"close": "Last"}))
    assert [s.name for s in series] == ["long.csv[ticker=AAA]", "long.csv[ticker=BBB]"]
    expected = make_bars(50, 2)
    np.testing.assert_allclose(series[1].bars[:, 3], expected["close"], rtol=1e-6)
    np.testing.assert_allclose(series[1].bars[:, 0], expected["open"], rtol=1e-6)
    assert series[1].timestamps.is_monotonic_increasing


def test_a_table_layout_names_what_is_wrong_with_it(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"column_map names unknown field\(s\) \['shut'\]"):
        TableLayout(column_map={"shut": "Close"})
    with pytest.raises(
        TypeError, match="layout must be a kronos.forecasting.tables.TableLayout.*got str 'ticker'"
    ):
        load_series([tmp_path / "long.csv"], "ticker")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"data.columns: column_map names unknown field\(s\) \['shut'\]"):
        config_from_dict({"data": {"columns": {"shut": "Close"}}})
    make_bars(30, 1).to_csv(tmp_path / "bars.csv", index=False)
    assert main(["forecast", str(tmp_path / "bars.csv"), "--steps", "2", "--columns", "shut=Close"]) == 2
    assert "--columns 'shut=Close': column_map names unknown field(s) ['shut']" in capsys.readouterr().err


def test_parquet_is_read_like_csv(tmp_path):
    pytest.importorskip("pyarrow")
    df = make_bars(40, 3)
    df.to_parquet(tmp_path / "x.parquet")
    df.to_csv(tmp_path / "x.csv", index=False)
    a, b = load_series([tmp_path / "x.parquet"])[0], load_series([tmp_path / "x.csv"])[0]
    np.testing.assert_allclose(a.bars, b.bars, rtol=1e-6)


def test_a_local_hour_repeated_by_a_clock_change_is_explained(tmp_path):
    stamps = list(pd.date_range("2024-11-02 20:00", periods=8, freq="h"))
    stamps.insert(6, pd.Timestamp("2024-11-03 01:00"))  # 01:00 twice: the clocks went back
    path = tmp_path / "local.csv"
    random_bars(9).assign(timestamps=stamps).to_csv(path, index=False)
    with pytest.raises(
        ValueError, match="a daylight-saving change repeats that hour: write the timestamps with"
    ):
        load_series([path])


def test_semicolons_tabs_and_decimal_commas_are_read(tmp_path):
    frame = random_bars(20)
    for name, options in (("semi.csv", dict(sep=";", decimal=",")), ("tab.csv", dict(sep="\t"))):
        frame.to_csv(tmp_path / name, index=False, **options)
        (one,) = load_series([tmp_path / name])
        np.testing.assert_allclose(one.bars[:, 3], frame["close"], rtol=1e-6)


def test_empty_and_header_only_files_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty: it has no header line and no rows"):
        load_series([tmp_path / "empty.csv"])
    random_bars(1).iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    with pytest.raises(ValueError, match="header.csv holds no rows"):
        load_series([tmp_path / "header.csv"])


def test_file_rows_are_named_as_a_spreadsheet_counts_them(tmp_path):
    frame = random_bars(20)
    frame.loc[7, "close"] = np.nan  # the 8th bar: line 9 of the CSV, under its header
    frame.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(
        ValueError, match=r"a.csv column 'close' has NaN values \(1 in all\), first at line 9"
    ):
        load_series([tmp_path / "a.csv"])
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    with pytest.raises(ValueError, match=r"a.parquet column 'close' has NaN values .*first at row 8"):
        load_series([tmp_path / "a.parquet"])
    frame.loc[7, "close"] = 1.0
    frame["timestamps"] = frame["timestamps"].astype(str)
    frame.loc[3, "timestamps"] = "soon"
    frame.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match="'soon' at line 5"):
        load_series([tmp_path / "b.csv"])
