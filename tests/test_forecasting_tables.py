"""kronos.forecasting.tables: splitting long tables into series, table layouts, and reading files
(CSV with any separator, Parquet) with errors that name the file and the line."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import calm_bars, make_bars, random_bars

from kronos.commands.main import main
from kronos.forecasting.series import SyntheticOHLCWarning
from kronos.forecasting.tables import TableLayout, load_series, read_table, split_table
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


# --- the files people have ---------------------------------------------------------------------------


def _xlsx_bytes() -> bytes:
    """The opening of an .xlsx workbook: a zip whose first entries are [Content_Types].xml and xl/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, said",
    [
        (_xlsx_bytes(), r"is an Excel workbook \(.xlsx\), but its name says CSV: save it as CSV"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512),
            r"Excel 97-2003 workbook \(.xls\), but its name says CSV",
        ),
        (b"PAR1" + bytes(64), "is a Parquet file, but its name says CSV: rename it to end in .parquet"),
        (
            gzip.compress(b"timestamps,close\n"),
            "is gzip-compressed, but its name says CSV: rename it to end in .csv.gz",
        ),
        (b"%PDF-1.4\n%\xe2\xe3", "is a PDF document, but its name says CSV"),
        (b"\x00\x01\x02binary", r"is a binary file \(it holds NUL bytes\)"),
    ],
    ids=["xlsx", "xls", "parquet", "gzip", "pdf", "binary"],
)
def test_a_file_that_is_not_csv_text_is_said_to_be_what_it_is(tmp_path, content, said):
    path = tmp_path / "prices.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"^{path}.*{said}"):
        load_series([path])
    with pytest.raises(ValueError, match=f"^upload.csv .*{said}"):
        read_table(content, "upload.csv")  # the service's uploads, by the name they came with


def test_a_parquet_name_on_text_and_a_gz_name_on_text_are_said_to_be_text(tmp_path):
    (tmp_path / "a.parquet").write_text("timestamps,close\n2024-01-01,1\n")
    with pytest.raises(
        ValueError, match="a.parquet is text, but its name says Parquet: rename it to end in .csv"
    ):
        load_series([tmp_path / "a.parquet"])
    (tmp_path / "a.csv.gz").write_text("timestamps,close\n2024-01-01,1\n")
    with pytest.raises(
        ValueError, match="a.csv.gz is text, but its name says gzip-compressed: rename it without the .gz"
    ):
        load_series([tmp_path / "a.csv.gz"])


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_a_truncated_compressed_file_is_one_error_naming_it(tmp_path, suffix):
    whole = tmp_path / f"whole.csv{suffix}"
    random_bars(400).to_csv(whole, index=False)
    assert len(load_series([whole])[0]) == 400
    cut = tmp_path / f"cut.csv{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    kind = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}[suffix]
    with pytest.raises(
        ValueError, match=f"^{cut}: its {kind} data is truncated or corrupt .*compress the file again"
    ):
        load_series([cut])
    flipped = bytearray(whole.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # one corrupt byte mid-stream
    cut.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=f"^{cut}"):
        load_series([cut])


def test_compressed_and_utf16_uploads_are_read(tmp_path):
    frame = random_bars(30)
    text = frame.to_csv(index=False)
    (one,) = split_table(read_table(gzip.compress(text.encode()), "up.csv.gz"), "up")
    np.testing.assert_allclose(one.bars[:, 3], frame["close"], rtol=1e-9)
    (tmp_path / "unicode.csv").write_bytes(frame.to_csv(index=False, sep="\t").encode("utf-16"))
    np.testing.assert_allclose(
        load_series([tmp_path / "unicode.csv"])[0].bars[:, 3], frame["close"], rtol=1e-9
    )


def test_a_header_one_field_short_is_refused_not_shifted(tmp_path):
    path = tmp_path / "short_header.csv"
    path.write_text("Date,Open,High,Low,Close\n2024-01-02,09:30,1,2,0.5,1.5\n2024-01-02,09:31,1,2,0.5,1.5\n")
    with pytest.raises(
        ValueError,
        match=r"short_header.csv: its rows have 6 fields but its header line names 5 .*add the missing name",
    ):
        load_series([path])


def _intraday(days: int = 12) -> pd.DataFrame:
    frame = calm_bars(days * 8, "30min")
    stamps = pd.DatetimeIndex(
        [
            day + pd.Timedelta(hours=9, minutes=30 + 30 * k)
            for day in pd.bdate_range("2024-01-02", periods=days)
            for k in range(8)
        ]
    )
    return frame.assign(timestamps=stamps)


def test_separate_date_and_time_columns_are_joined(tmp_path):
    frame = _intraday()
    split = frame.assign(
        Date=frame["timestamps"].dt.strftime("%Y-%m-%d"), Time=frame["timestamps"].dt.strftime("%H:%M")
    )
    split = split.drop(columns="timestamps")[["Date", "Time", "open", "high", "low", "close", "volume"]]
    split.to_csv(tmp_path / "futures.csv", index=False)
    (one,) = load_series([tmp_path / "futures.csv"])
    assert list(one.timestamps) == list(frame["timestamps"])
    np.testing.assert_allclose(one.bars[:, 3], frame["close"], rtol=1e-9)
    (named,) = load_series([tmp_path / "futures.csv"], TableLayout(timestamp_column="Date, Time"))
    assert list(named.timestamps) == list(frame["timestamps"])
    # MetaTrader: 2024.01.02 dates, <ANGLE> names, tabs, <VOL> for the volume
    metatrader = split.assign(Date=frame["timestamps"].dt.strftime("%Y.%m.%d"))
    metatrader.columns = ["<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<VOL>"]
    metatrader.to_csv(tmp_path / "EURUSD_M30.csv", index=False, sep="\t")
    (mt,) = load_series([tmp_path / "EURUSD_M30.csv"])
    assert list(mt.timestamps) == list(frame["timestamps"]) and mt.columns[-1] == "volume"
    with pytest.raises(ValueError, match=r"timestamp column \['Hour'\] is not in the file"):
        load_series([tmp_path / "futures.csv"], TableLayout(timestamp_column="Date,Hour"))
    metatrader.to_csv(tmp_path / "headerless.csv", index=False, header=False)
    with pytest.raises(ValueError, match="its first line looks like data, not a header: add a header line"):
        load_series([tmp_path / "headerless.csv"])


@pytest.mark.parametrize(
    "column, mapping",
    [
        ("Adj Close", "'close=Adj Close'"),
        ("Last", "close=Last"),
        ("Close/Last", "close=Close/Last"),
        ("BTC close", "'close=BTC close'"),
    ],
)
def test_a_close_under_another_name_is_named_with_the_mapping_to_pass(tmp_path, column, mapping):
    frame = random_bars(30).rename(columns={"close": column})
    frame.to_csv(tmp_path / "quotes.csv", index=False)
    with pytest.raises(ValueError) as caught:
        load_series([tmp_path / "quotes.csv"])
    message = str(caught.value)
    assert (
        f"close could be ['{column}']: pass --columns {mapping} (in Python, column_map={{'close': '{column}'}})"
        in message
    )
    (one,) = load_series(
        [tmp_path / "quotes.csv"], TableLayout(column_map={"close": column.upper()})
    )  # any case
    np.testing.assert_allclose(one.bars[:, 3], random_bars(30)["close"], rtol=1e-9)


def test_a_price_only_file_is_told_to_build_its_bars_from_the_close(tmp_path):
    random_bars(30)[["timestamps", "close"]].rename(columns={"close": "Price"}).to_csv(
        tmp_path / "p.csv", index=False
    )
    with pytest.raises(
        ValueError, match="close could be \\['Price'\\]: pass --columns close=Price and --ohlc-from-close"
    ):
        load_series([tmp_path / "p.csv"])
