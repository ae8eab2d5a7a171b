"""Reading tables of bars (CSV in any common dialect, Parquet, compressed) and cutting them into
`Series`: the one reader and splitter (`split_table`) of the package, used by the CLI, the
service, evaluation, training, Ray and `predict_df` (with its `TableOptions`)."""

from __future__ import annotations

import io
import lzma
import re
import shlex
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kronos.forecasting.schedules import GAP_POLICIES, check_calendar, frequency
from kronos.forecasting.series import (
    FEATURE_COLUMNS,
    FILE_LINE,
    FILE_ROW,
    MIN_HISTORY,
    PRICE_COLUMNS,
    Series,
    SyntheticOHLCWarning,
    check_ids_present,
    check_time_order,
    checked_instance,
    feature_sources,
    ohlc_from_close,
    parse_timestamps,
    plain_name,
    positive_int,
    prepare_ohlcv,
    with_feature_names,
)

TIMESTAMP_CANDIDATES = ("timestamps", "timestamp", "date", "datetime", "time")
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
DUPLICATE_HINT = (
    "; duplicate timestamps in one file usually mean several symbols: name the id column (--id-column)"
)
NAN_POLICIES = ("raise", "ffill", "drop")


@dataclass(frozen=True)
class TableOptions:
    """How `KronosPredictor.predict_df` takes the series of a long table.

    `nan_policy`: what missing OHLCV values do ("raise", "ffill" or "drop", `split_table`);
    `max_history`: the last bars of each series used (None: the predictor's lookback);
    `min_history`: the bars a series needs (at least 3, to infer a frequency); `freq`: the
    future's frequency (None: each series' own schedule, `kronos.forecasting.schedules.future_timestamps`);
    `on_gap`: what gaps in a history do ("warn", "raise" or "ignore"); `calendar`: an exchange
    calendar ("XNYS"; the `calendars` extra) whose holidays get no future bars and are not gaps;
    `adjust_splits`: back-adjust each series for its split-like bars
    (`kronos.forecasting.actions.adjust_splits`; without it they are warned about). Checked when made.
    """

    nan_policy: str = "raise"
    freq: str | pd.DateOffset | None = None
    on_gap: str = "warn"
    max_history: int | None = None
    min_history: int = MIN_HISTORY
    calendar: str | None = None
    adjust_splits: bool = False

    def __post_init__(self) -> None:
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {self.nan_policy!r}")
        if self.freq is not None:
            frequency(self.freq)
        if self.on_gap not in GAP_POLICIES:
            raise ValueError(f"on_gap must be one of {GAP_POLICIES}, got {self.on_gap!r}")
        object.__setattr__(self, "calendar", check_calendar(self.calendar))
        if not isinstance(self.adjust_splits, bool):
            raise TypeError(f"adjust_splits must be True or False, got {self.adjust_splits!r}")
        min_history = positive_int(self.min_history, "min_history")
        if min_history < 3:
            raise ValueError(f"min_history must be at least 3 (to infer a frequency), got {min_history}")
        object.__setattr__(self, "min_history", min_history)
        if self.max_history is not None:
            object.__setattr__(self, "max_history", positive_int(self.max_history, "max_history"))
            self.history_bars(self.max_history)

    def history_bars(self, lookback: int) -> int:
        """The bars of history each series gives: `max_history`, else `lookback`; never below `min_history`."""
        bars = lookback if self.max_history is None else self.max_history
        if bars < self.min_history:
            raise ValueError(f"max_history ({bars}) is below min_history ({self.min_history})")
        return bars


TABLE_OPTIONS = TableOptions()


def long_table(series: Sequence[Series], id_column: str = "symbol") -> pd.DataFrame:
    """Series as one long table, the input of `predict_df`: each series' rows with its key as id."""
    return pd.concat([one.frame().assign(**{id_column: one.key}) for one in series], ignore_index=True)


def _format_suffix(path: Path) -> str | None:
    """The data format of a file name ('.csv' for prices.csv.gz), or None if it is not a data file."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    if suffixes and suffixes[-1] in CSV_SUFFIXES + PARQUET_SUFFIXES:
        return suffixes[-1]
    return None


def series_name(path: Path) -> str:
    """A file's series name: its name without the data suffixes ('AAPL' for AAPL.csv.gz)."""
    name = path.name
    if path.suffix.lower() in COMPRESSION_SUFFIXES:
        name = Path(name).stem
    return Path(name).stem


def read_table(source: str | Path | bytes, name: str | None = None) -> pd.DataFrame:
    """Read a .csv (optionally compressed) or .parquet file, or the bytes of one, into a DataFrame.

    Rows are labelled as messages name them: a CSV's by its line (the header is line 1), a
    Parquet file's by its row counted from 1. A CSV separated by semicolons, tabs or bars is
    recognised from its header; with semicolons, a decimal comma too; UTF-16 text (a
    spreadsheet's "Unicode text") is read as such. A Parquet file's index (e.g. the timestamps)
    becomes a column. Bytes are read as the format `name`'s suffix says (CSV without one);
    messages name the file by `name` (default: its path). A file whose bytes are not what its
    name says (an Excel workbook, a PDF or a gzip file named .csv; a truncated .gz) is refused
    in one line saying what it is and what to do (`check_content`).
    """
    suffix: str | None
    if isinstance(source, bytes):
        label = name or "file"
        suffix = _format_suffix(Path(label)) or ".csv"
        head = source[:HEAD_BYTES]
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"data file {str(path)!r} does not exist")
        label, suffix = name or str(path), _format_suffix(path)
        with path.open("rb") as file:
            head = file.read(HEAD_BYTES)
    compression = _compression(Path(label))
    if suffix in PARQUET_SUFFIXES + CSV_SUFFIXES:
        check_content(head, label, "parquet" if suffix in PARQUET_SUFFIXES else "text", compression)
    try:
        if suffix in PARQUET_SUFFIXES:
            return _read_parquet(source, label)
        if suffix in CSV_SUFFIXES:
            return _read_csv_file(
                source, label, compression, "utf-16" if content_kind(head) == "utf-16" else None
            )
    except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as err:
        raise ValueError(f"{label}: {_corrupt(compression, err)}") from err
    raise ValueError(f"{label}: unsupported file type; use .csv or .parquet")


def _read_csv_file(
    source: str | Path | bytes, label: str, compression: str | None, encoding: str | None
) -> pd.DataFrame:
    try:
        table = _read_csv(source, compression, encoding)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{label} is empty: it has no header line and no rows") from err
    except OSError as err:  # a bz2 stream that is not one, a gzip member cut short
        raise ValueError(f"{label}: {_corrupt(compression, err)}") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{label} is not a readable CSV file: {err}") from err
    if not isinstance(table.index, pd.RangeIndex):
        raise ValueError(
            f"{label}: its rows have {len(table.columns) + table.index.nlevels} fields but its header line names "
            f"{len(table.columns)} ({[str(c) for c in table.columns]}), so every value would sit under the wrong "
            "name: add the missing name to the header (e.g. Date,Time,Open,High,Low,Close,Volume for separate "
            "date and time columns), or remove the separator that ends each row"
        )
    return table.set_axis(pd.RangeIndex(2, len(table) + 2, name=FILE_LINE))


def _corrupt(compression: str | None, err: BaseException) -> str:
    what = f"its {compression} data" if compression else "it"
    return (
        f"{what} is truncated or corrupt ({' '.join(str(err).split()) or type(err).__name__}): download or "
        "compress the file again"
    )


HEAD_BYTES = 4096  # what content checks look at
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}
MAGIC = (  # the first bytes of the formats people save under a .csv name (content_kind)
    (b"\xef\xbb\xbf", "text"),  # a UTF-8 byte order mark
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "xls"),
    (b"PAR1", "parquet"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"%PDF", "pdf"),
    (b"ARROW1", "arrow"),
    (b"\x89HDF", "hdf5"),
    (b"SQLite format 3", "sqlite"),
)
KINDS = {  # content kind: (what it is, what to do when a file is named otherwise)
    "text": ("text", "rename it to end in .csv"),
    "utf-16": ("text", "rename it to end in .csv"),
    "zip": ("a zip archive", "name it .csv.zip if it holds one CSV file, or unzip it"),
    "xlsx": (
        "an Excel workbook (.xlsx)",
        "save it as CSV (in the spreadsheet: File > Save As > CSV) and pass that",
    ),
    "ods": ("an OpenDocument spreadsheet (.ods)", "save it as CSV (File > Save As > CSV) and pass that"),
    "xls": (
        "an Excel 97-2003 workbook (.xls)",
        "save it as CSV (in the spreadsheet: File > Save As > CSV) and pass that",
    ),
    "parquet": ("a Parquet file", "rename it to end in .parquet"),
    "gzip": ("gzip-compressed", "rename it to end in .csv.gz"),
    "bz2": ("bzip2-compressed", "rename it to end in .csv.bz2"),
    "xz": ("xz-compressed", "rename it to end in .csv.xz"),
    "zstd": ("zstd-compressed", "rename it to end in .csv.zst"),
    "pdf": ("a PDF document", "export the bars from where they came as CSV"),
    "arrow": ("an Arrow/Feather file", "write it as Parquet or CSV"),
    "hdf5": ("an HDF5 file", "write it as Parquet or CSV"),
    "sqlite": ("an SQLite database", "export the table as CSV"),
    "binary": ("a binary file (it holds NUL bytes)", "export the bars as CSV or Parquet"),
}


def content_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: a key of KINDS ('text' for anything else)."""
    kind = next((kind for magic, kind in MAGIC if head.startswith(magic)), None)
    if kind == "zip":
        if b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet" in head:
            return "ods"
        return "xlsx" if b"xl/" in head or b"[Content_Types].xml" in head else "zip"
    if kind is None:
        return "binary" if b"\x00" in head else "text"
    return kind


def check_content(head: bytes, label: str, expected: str, compression: str | None = None) -> None:
    """Refuse a file whose first bytes are not what its name says (`expected`: "text" for CSV or
    "parquet"; `compression`: the compression its suffix names), saying what it is and what to do."""
    kind, wanted = content_kind(head), compression or expected
    if kind == wanted or (wanted == "text" and kind == "utf-16") or not head:
        return
    what, advice = KINDS[kind]
    named = (
        f"its name says {compression}-compressed"
        if compression
        else f"its name says {'Parquet' if expected == 'parquet' else 'CSV'}"
    )
    if kind in ("text", "utf-16") and compression:
        advice = f"rename it without the {Path(label).suffix}"
    raise ValueError(f"{label} is {what}, but {named}: {advice}")


def _compression(path: Path) -> str | None:
    return COMPRESSIONS.get(path.suffix.lower())


def _read_parquet(source: str | Path | bytes, label: str) -> pd.DataFrame:
    try:
        table = pd.read_parquet(io.BytesIO(source) if isinstance(source, bytes) else source)
    except ImportError as err:
        raise ImportError(
            f"reading {label} needs pyarrow: pip install 'kronos-forecasting[parquet]' (or save the data as CSV)"
        ) from err
    except (ValueError, OSError) as err:
        raise ValueError(f"{label} is not a readable Parquet file: {err}") from err
    if not isinstance(table.index, pd.RangeIndex):
        table = table.reset_index()
    return table.set_axis(pd.RangeIndex(1, len(table) + 1, name=FILE_ROW))


CSV_SEPARATORS = (";", "\t", "|")


def _read_csv(source: str | Path | bytes, compression: str | None, encoding: str | None) -> pd.DataFrame:
    """A CSV with commas, or with the separator its one-column header turns out to hold."""

    def read(**options: str) -> pd.DataFrame:
        if isinstance(source, bytes):
            return pd.read_csv(io.BytesIO(source), compression=compression, encoding=encoding, **options)
        return pd.read_csv(source, encoding=encoding, **options)

    table = read()
    if len(table.columns) != 1:
        return table
    header = str(table.columns[0])
    sep = next((sep for sep in CSV_SEPARATORS if sep in header), None)
    if sep is None:
        return table
    table = read(sep=sep)
    if sep == ";":
        # '1,5' is one and a half where semicolons separate: European spreadsheets write it so
        comma = read(sep=sep, decimal=",")
        if _numeric_columns(comma) > _numeric_columns(table):
            return comma
    return table


def _numeric_columns(table: pd.DataFrame) -> int:
    return sum(pd.api.types.is_numeric_dtype(dtype) for dtype in table.dtypes)


def expand_folders(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder as its .csv and .parquet files, sorted by name."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and _format_suffix(p))
        if not found:
            raise ValueError(f"folder {str(path)!r} holds no .csv or .parquet files")
        files.extend(found)
    return files


@dataclass(frozen=True)
class TableLayout:
    """Where a file or table keeps its bars (`kronos forecast --id-column --columns
    --timestamp-column --ohlc-from-close`).

    `id_column` splits a long table into one series per value (None: the table is one series);
    `column_map` maps our fields (open, ..., amount) to the table's names, other columns are
    matched in any case (`Close` is `close`); `timestamp_column` names the timestamps (None: the
    first of TIMESTAMP_CANDIDATES present, in any case); with `from_close`, a table without open,
    high and low gets them from its close (`ohlc_from_close`).
    """

    id_column: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    timestamp_column: str | None = None
    from_close: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.column_map) - set(FEATURE_COLUMNS))
        if unknown:
            raise ValueError(f"column_map names unknown field(s) {unknown}; fields are {FEATURE_COLUMNS}")


ONE_SERIES = TableLayout()  # a table of one series, its columns found by name


def _checked_layout(layout: object) -> TableLayout:
    return checked_instance(layout, TableLayout, "layout", "TableLayout(id_column='symbol')")


def map_columns(df: pd.DataFrame, name: str, layout: TableLayout = ONE_SERIES) -> pd.DataFrame:
    """Rename the table's columns to FEATURE_COLUMNS, keeping only those, and add the parsed
    `timestamps`, as `layout.column_map` and `layout.timestamp_column` say.

    Names are matched as `plain_name` gives them ('<Close>' is close). The timestamps are one
    column, or a date column and a time-of-day column joined ('Date,Time' names both; found
    without it when the file has `date` and `time` columns, the latter holding times such as
    09:30). A missing price column that has likely stand-ins (Adj Close, Last, Price, ...) is
    refused naming them and the mapping to pass. Row labels are kept, so that errors name the
    file's rows.
    """
    by_plain: dict[str, str] = {}
    for col in df.columns:
        by_plain.setdefault(plain_name(col), col)
    found = feature_sources(df.columns, name, [f for f in FEATURE_COLUMNS if f not in layout.column_map])
    renames: dict[str, str] = {}
    for feature in FEATURE_COLUMNS:
        source = layout.column_map.get(feature)
        if source is not None:
            source = source if source in df.columns else by_plain.get(plain_name(source))
            if source is None:
                raise ValueError(
                    f"{name}: column {layout.column_map[feature]!r} (mapped to {feature!r}) is not in the file; "
                    f"it has {list(df.columns)}"
                )
        else:
            source = found.get(feature)
        if source is not None:
            renames[source] = feature
    _check_price_stand_ins(df, renames, name)
    sources = _timestamp_sources(df, by_plain, layout.timestamp_column, name)
    # parsed here, where the file's own column names are known for the error message
    timestamps = parse_timestamps(_joined(df, sources), f"{name} column {' + '.join(map(repr, sources))}")
    return df[list(renames)].rename(columns=renames).assign(timestamps=timestamps)


STAND_INS = {  # what files call a price column (plain names), besides names that hold the field's own
    "close": (
        "last",
        "price",
        "adj close",
        "adj_close",
        "adjclose",
        "close/last",
        "settle",
        "settlement",
        "px_last",
    ),
    "open": ("first", "opening"),
    "high": ("max", "hi"),
    "low": ("min", "lo"),
}


def _check_price_stand_ins(df: pd.DataFrame, renames: dict[str, str], name: str) -> None:
    """Refuse a table missing a price column that other columns could stand in for, naming them
    and the exact mapping to pass (`--columns 'close=Adj Close'`)."""
    found = set(renames.values())
    free = [col for col in df.columns if col not in renames]
    choices = {}
    for feature in PRICE_COLUMNS:
        if feature not in found:
            stand_ins = [c for c in free if plain_name(c) in STAND_INS[feature] or feature in plain_name(c)]
            if stand_ins:
                choices[feature] = stand_ins
    if not choices:
        return
    mapping = ",".join(f"{feature}={_quoted(columns[0])}" for feature, columns in choices.items())
    listed = "; ".join(
        f"{feature} could be {[str(c) for c in columns]}" for feature, columns in choices.items()
    )
    from_close = (
        " and --ohlc-from-close"
        if all(f not in found and f not in choices for f in ("open", "high", "low"))
        else ""
    )
    python = ", ".join(f"{feature!r}: {str(columns[0])!r}" for feature, columns in choices.items())
    raise ValueError(
        f"{name} has no {' or '.join(repr(f) for f in choices)} column (it has {[str(c) for c in df.columns]}); "
        f"{listed}: pass --columns {shlex.quote(mapping)}{from_close} (in Python, column_map={{{python}}})"
    )


def _quoted(column: object) -> str:
    """A column name as a --columns entry writes it: quoted where it holds a comma or a quote."""
    text = str(column)
    if '"' in text:
        return f"'{text}'"
    return f'"{text}"' if "," in text or "'" in text else text


TIME_OF_DAY = r"\s*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*"


def _timestamp_sources(
    df: pd.DataFrame, by_plain: dict[str, str], timestamp_column: str | None, name: str
) -> list[str]:
    """The column(s) holding the timestamps: one, or a date column and a time column."""
    if timestamp_column:
        if timestamp_column in df.columns:
            return [timestamp_column]
        parts = [part.strip() for part in timestamp_column.split(",")]
        found = [part if part in df.columns else by_plain.get(plain_name(part)) for part in parts]
        missing = [part for part, column in zip(parts, found) if column is None]
        if missing or len(parts) > 2:
            what = (
                f"{missing}"
                if missing
                else f"{timestamp_column!r} (give one column, or a date and a time column)"
            )
            raise ValueError(f"{name}: timestamp column {what} is not in the file; it has {list(df.columns)}")
        return [str(column) for column in found]
    date, time = by_plain.get("date"), by_plain.get("time")
    if (
        date is not None
        and time is not None
        and not any(c in by_plain for c in TIMESTAMP_CANDIDATES[:2] + ("datetime",))
    ):
        if df[time].astype(str).str.fullmatch(TIME_OF_DAY).all():
            return [date, time]
    column = next((by_plain[c] for c in TIMESTAMP_CANDIDATES if c in by_plain), None)
    if column is None:
        what = (
            "its first line looks like data, not a header: add a header line such as "
            "Date,Time,Open,High,Low,Close,Volume"
            if _looks_like_data(df.columns)
            else "name it with --timestamp-column (timestamp_column= in Python), or a date and a time column "
            "as --timestamp-column Date,Time"
        )
        raise ValueError(
            f"{name} has no timestamp column (looked for {list(TIMESTAMP_CANDIDATES)} in any case); it has "
            f"{list(df.columns)}: {what}"
        )
    return [column]


def _looks_like_data(columns: pd.Index) -> bool:
    """Whether a header line reads as a row of numbers and dates (a file saved without a header)."""
    data_like = sum(bool(re.fullmatch(r"[-+]?[\d.:/ ]+", str(c).strip())) for c in columns)
    return data_like * 2 >= len(columns)


def _joined(df: pd.DataFrame, sources: list[str]) -> pd.Series:
    """The timestamps' text: one column as it is, or a date column and a time column joined."""
    if len(sources) == 1:
        return df[sources[0]]
    date, time = (df[column] for column in sources)
    if pd.api.types.is_datetime64_any_dtype(date):
        date = date.dt.strftime("%Y-%m-%d")
    joined = date.astype(str).str.strip() + " " + time.astype(str).str.strip()
    return joined.where(date.notna() & time.notna())


def series_from_frame(df: pd.DataFrame, name: str, key: object | None = None) -> Series:
    """Validate a frame with `timestamps` and FEATURE_COLUMNS (as from `map_columns`) into a series
    keyed by `key` (default: its name).

    Rows are sorted by time; repeated or unreadable timestamps are errors naming the row.
    """
    rows = _sorted_rows(df, name, None, "")
    return Series(rows.bars, rows.timestamps, name if key is None else key, name, rows.columns)


@dataclass(frozen=True)
class _Rows:
    """A long table's validated rows, in the order its series are cut from: bars [n, 6] float64,
    timestamps [n], and each row's id (None: one series)."""

    bars: np.ndarray
    timestamps: pd.DatetimeIndex
    ids: np.ndarray | None
    columns: tuple[str, ...]


def split_table(
    df: pd.DataFrame,
    name: str,
    layout: TableLayout = ONE_SERIES,
    *,
    as_given: bool = False,
    nan_policy: str = "raise",
) -> list[Series]:
    """One table as series: the whole of it named `name`, or one series per `layout.id_column`
    value; the one splitter of long tables (files, `predict_df`, Ray).

    A table as a file holds it (default): columns are found as `map_columns` finds them, each
    series' rows are sorted by time, and series are keyed by their id as text, in sorted order,
    named `name[id_column=id]`. With `layout.from_close`, a table without open, high and low gets
    them from its close (`ohlc_from_close`), with one `SyntheticOHLCWarning`; such series have
    `synthetic_ohlc`. Missing values are refused, naming their row.

    `as_given`: the table as a program gave it (`predict_df`, whose output keeps its input's ids
    and order): the id column (default "id") and timestamp column (default "timestamps") are named
    exactly, each series' rows must already be in time order (refused otherwise; series may
    interleave), and series keep their id values as keys, in order of first appearance, named
    "series <id_column>=<id>". Missing OHLCV values follow `nan_policy`: "raise" errors naming
    the id and timestamp, "ffill" carries each column's last value forward within the series and
    then drops the rows still missing one, "drop" drops every row with a missing value.

    Every error names the table (and the id) and the column or row at fault.
    """
    layout = _checked_layout(layout)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    if as_given:
        rows = _given_rows(
            df, name, layout.id_column or "id", layout.timestamp_column or "timestamps", nan_policy
        )
        return _cut(rows, lambda id_: (id_, f"series {layout.id_column or 'id'}={id_!r}"), sort_ids=False)
    if df.empty:
        raise ValueError(f"{name} holds no rows")
    id_column = layout.id_column
    ids = None
    if id_column:
        if id_column not in df.columns:
            raise ValueError(f"{name} has no id column {id_column!r}; it has {list(df.columns)}")
        check_ids_present(df[id_column], name, id_column)
        ids = df[id_column]
    mapped = map_columns(df, name, layout)
    synthetic = layout.from_close and not any(c in mapped.columns for c in ("open", "high", "low"))
    if synthetic:
        mapped = ohlc_from_close(mapped, name, warn=False, by=ids)
    rows = _sorted_rows(mapped, name, ids, id_column or "")
    series = _cut(rows, lambda id_: (str(id_), f"{name}[{id_column}={id_}]"), sort_ids=True, name=name)
    if synthetic:
        real = tuple(c for c in rows.columns if c not in ("open", "high", "low"))
        series = [replace(one, columns=real, synthetic_ohlc=True) for one in series]
        warnings.warn(
            f"{name}: open, high and low of {len(series)} series are synthesised from the close (open = previous "
            "close, high/low = max/min of open and close); forecasts of them follow that rule, not the market",
            SyntheticOHLCWarning,
            stacklevel=3,
        )
    return series


def _sorted_rows(mapped: pd.DataFrame, name: str, ids: pd.Series | None, id_column: str) -> _Rows:
    """A file's rows (columns as from `map_columns`), validated and sorted by id, then by time
    (stable); repeated timestamps within a series are refused."""
    timestamps = pd.DatetimeIndex(parse_timestamps(mapped["timestamps"], f"{name} column 'timestamps'"))
    features = mapped.drop(columns="timestamps")
    bars = prepare_ohlcv(features, name, np.float64)
    codes = np.zeros(len(bars), dtype=np.int64) if ids is None else pd.factorize(ids, sort=True)[0]
    order = np.lexsort((timestamps.as_unit("ns").asi8, codes))
    timestamps = timestamps[order]
    if ids is None:
        check_time_order(pd.Series(timestamps), name, hint=DUPLICATE_HINT)
        sorted_ids = None
    else:
        sorted_ids = ids.to_numpy()[order]
        check_time_order(pd.Series(timestamps), name, pd.Series(sorted_ids), id_column)
    columns = tuple(c for c in FEATURE_COLUMNS if c in features.columns)
    return _Rows(bars[order], timestamps, sorted_ids, columns)


def _given_rows(df: pd.DataFrame, name: str, id_column: str, timestamp_column: str, nan_policy: str) -> _Rows:
    """A program's long table (`split_table(as_given=True)`), validated, in its own row order."""
    for role, column in (("id_column", id_column), ("timestamp_column", timestamp_column)):
        if column not in df.columns:
            raise ValueError(f"{role} {column!r} is not a column of {name}; it has {list(df.columns)}")
    if id_column == timestamp_column:
        raise ValueError(f"id_column and timestamp_column are both {id_column!r}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    if df.empty:
        raise ValueError(f"{name} has no rows")
    df = with_feature_names(df, name)
    check_ids_present(df[id_column], name, id_column)
    ids = df[id_column].reset_index(drop=True)
    stamps = parse_timestamps(df[timestamp_column], f"timestamp column {timestamp_column!r}")
    frame = pd.DataFrame({"_id": ids, "_ts": stamps.dt.as_unit("ns").reset_index(drop=True)})
    check_time_order(frame["_ts"], name, frame["_id"], id_column)
    features = [c for c in FEATURE_COLUMNS if c in df.columns]
    missing_prices = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing_prices:
        raise ValueError(f"{name} is missing price column(s) {missing_prices}; it has {list(df.columns)}")
    bars = _apply_nan_policy(
        df[features].reset_index(drop=True), frame, nan_policy, id_column, timestamp_column
    )
    frame = frame.loc[bars.index]
    if frame.empty:
        raise ValueError(f"no rows left after nan_policy={nan_policy!r}")
    # the input's own row labels, so that prepare_ohlcv's errors (non-numeric, infinite) name them
    values = prepare_ohlcv(bars.set_axis(df.index[bars.index]), name, np.float64)
    return _Rows(values, pd.DatetimeIndex(frame["_ts"].to_numpy()), frame["_id"].to_numpy(), tuple(features))


def _apply_nan_policy(
    bars: pd.DataFrame, frame: pd.DataFrame, nan_policy: str, id_column: str, timestamp_column: str
) -> pd.DataFrame:
    missing = bars.isna()
    if not missing.to_numpy().any():
        return bars
    if nan_policy == "raise":
        rows, cols = np.nonzero(missing.to_numpy())
        row = bars.index[rows[0]]
        raise ValueError(
            f"column {bars.columns[cols[0]]!r} has missing values ({len(rows)} in all), first at "
            f"{id_column}={frame.at[row, '_id']!r}, {timestamp_column}={frame.at[row, '_ts']}; "
            f"pass nan_policy='ffill' or 'drop' to fill or drop them"
        )
    if nan_policy == "ffill":
        bars = bars.groupby(frame["_id"].to_numpy(), sort=False).ffill()
    return bars[bars.notna().all(axis=1)]


def _cut(
    rows: _Rows, identify: Callable[[object], tuple[object, str]], *, sort_ids: bool, name: str = ""
) -> list[Series]:
    """The rows as series, one per id (`identify(id)` gives its key and name; ids sorted or in
    order of first appearance), each in the rows' order; one series keyed and named `name`
    without ids."""
    if rows.ids is None:
        return [Series(rows.bars, rows.timestamps, name, name, rows.columns)]
    codes, uniques = pd.factorize(rows.ids, sort=sort_ids)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    series = []
    for k, part in enumerate(np.split(order, bounds)):
        key, label = identify(uniques[k])
        series.append(Series(rows.bars[part], rows.timestamps[part], key, label, rows.columns))
    return series


def load_series(paths: Sequence[str | Path], layout: TableLayout = ONE_SERIES) -> list[Series]:
    """Read OHLCV series from files or folders of them, each file laid out as `layout` says: one
    symbol per file, or long tables split by `layout.id_column`. A file's series is named after
    the file, a long table's `file[id=value]`.

    Every error names the file (and symbol) and the column or line at fault.
    """
    _checked_layout(layout)
    if not paths:
        raise ValueError("no data files given")
    series: list[Series] = []
    for path in expand_folders(paths):
        found = split_table(read_table(path), path.name, layout)
        if not layout.id_column:
            found = [replace(found[0], key=series_name(path), name=series_name(path))]
        series.extend(found)
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        seen = {n for n in names if names.count(n) > 1}
        raise ValueError(f"several data files give the same series name(s) {sorted(seen)}: rename the files")
    return series
