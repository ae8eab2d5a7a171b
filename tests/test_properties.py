"""Property-based tests (hypothesis): hostile bars, timestamps, arguments, files and command lines.

Every outcome is a finite result of the right shape, or a ValueError/TypeError that says what is
wrong: it names the hostile argument, a column given hostile values, or the file (from the command
line: exit status 2 and one line, and no output file); input with nothing wrong in it always
forecasts. The one documented exception to finiteness: `realized_vol`
is NaN at a step where no sampled path has a positive close, and then a VolatilityWarning names
it. The examples per property are bounded by the hypothesis profile in conftest.py.
"""

from __future__ import annotations

import io
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import universe_table
from hypothesis import event, given
from hypothesis import strategies as st

from kronos import KronosPredictor
from kronos.engine.sampling import Sampling
from kronos.evaluation.cross_section import CrossSection, evaluate_cross_section
from kronos.forecasting.paths import VolatilityWarning, quantile_column
from kronos.forecasting.series import FEATURE_COLUMNS, MIN_HISTORY, as_timestamps
from kronos.forecasting.tables import TableOptions, load_series

TINY_CONTEXT = 16  # short, so that horizons beyond the context are cheap to reach
CLEAN_STAMPS = ("regular", "dst-aware", "dst-offsets")
HOSTILE_VALUES = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e39, 3.3e38, 0.0, -1.0, 1e-300, 1e-39, 1e20, -1e20]


@pytest.fixture(scope="module")
def predictor(tiny_model, tiny_tokenizer) -> KronosPredictor:
    return KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=TINY_CONTEXT)


# --- strategies -------------------------------------------------------------------------------------


@dataclass
class Case:
    """Bars and their timestamps; `clean` when nothing in them is wrong (they must forecast)."""

    bars: pd.DataFrame  # open, high, low, close[, volume[, amount]]
    stamps: object  # as the API takes them: Series, DatetimeIndex or list
    stamp_kind: str
    notes: list[str] = field(default_factory=list)  # what was made hostile in the bars

    @property
    def clean(self) -> bool:
        return not self.notes and self.stamp_kind in CLEAN_STAMPS and len(self.bars) >= 3

    @property
    def hit_columns(self) -> list[str]:
        """The columns given hostile values, when that is all that is wrong (a refusal names one)."""
        if self.notes[:1] == ["duplicate"] and self.stamp_kind in CLEAN_STAMPS:
            return [self.notes[1]]  # two columns for one feature: refused naming it
        if self.notes[:1] != ["values"] or self.stamp_kind not in CLEAN_STAMPS or len(self.bars) < 3:
            return []
        return [note.split("[")[0] for note in self.notes[1:]]

    def frame(self) -> pd.DataFrame:
        """Bars with a `timestamps` column, as a file holds them."""
        out = self.bars.copy()
        out.insert(0, "timestamps", list(self.stamps))
        return out


def random_walk(n: int, seed: int, level: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[:1], close[:-1]]
    spread = 1 + np.abs(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * spread,
            "low": np.minimum(open_, close) / spread,
            "close": close,
        }
    )


@st.composite
def timestamps(draw, n: int, hostile: bool) -> tuple[object, str]:
    """n timestamps: regular ones or across a daylight-saving change (as tz-aware values or as
    strings with their UTC offsets), all of which must forecast; or, when `hostile`, broken ones
    (unsorted, a repeat, a NaT, one off the grid)."""
    kinds = (
        ["unsorted", "repeat", "nat", "jitter"]
        if hostile and n >= 2
        else ["regular"] * 3 + ["dst-aware", "dst-offsets"]
    )
    kind = draw(st.sampled_from(kinds))
    if kind.startswith("dst"):
        start = draw(st.sampled_from(["2024-03-09 20:00", "2024-11-02 20:00"]))
        freq = draw(st.sampled_from(["h", "30min"]))
        stamps = pd.date_range(start, periods=n, freq=freq, tz="America/New_York")
        return ([str(s) for s in stamps] if kind == "dst-offsets" else pd.Series(stamps)), kind
    stamps = pd.date_range("2024-03-04 09:00", periods=n, freq=draw(st.sampled_from(["D", "h", "5min", "B"])))
    if kind == "regular":
        form = draw(st.sampled_from(["series", "index", "list"]))
        return {"series": pd.Series(stamps), "index": stamps, "list": list(stamps)}[form], kind
    values = list(stamps)
    i = draw(st.integers(1, n - 1))
    if kind == "unsorted":
        values[i - 1], values[i] = values[i], values[i - 1]
    elif kind == "repeat":
        values[i] = values[i - 1]
    elif kind == "nat":
        values[i] = pd.NaT
        return pd.DatetimeIndex(values), kind
    else:
        values[i] = values[i] + pd.Timedelta(seconds=draw(st.integers(1, 3000)))
    return pd.Series(values), kind


TROUBLES = ["none"] * 5 + ["values", "scale", "volume", "dtype", "stamps", "short", "duplicate"]
NAME_STYLES = {"lower": str.lower, "title": str.title, "upper": str.upper}  # columns match in any case


@st.composite
def cases(draw, max_rows: int = 30) -> Case:
    """Bars, often with nothing wrong, else with one kind of trouble: hostile values (NaN, inf,
    beyond float32, zeros, negatives, tiny), a hostile scale of prices or volume, a wrong dtype or
    a missing column, broken timestamps, or a history too short."""
    trouble = draw(st.sampled_from(TROUBLES))
    n = draw(st.integers(0, 2) if trouble == "short" else st.integers(3, max_rows))
    bars = random_walk(n, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([1e-3, 1.0, 50.0, 3e4, 1e8])))
    extras = draw(st.sampled_from(["none", "volume", "volume+amount"]))
    if extras != "none":
        bars["volume"] = np.random.default_rng(n).integers(0, 10**6, n).astype(float)
    if extras == "volume+amount":
        bars["amount"] = bars["volume"] * bars["close"]
    notes = [] if trouble in ("none", "stamps") else [trouble]
    if trouble == "values":
        cells = st.tuples(
            st.sampled_from(list(bars.columns)), st.integers(0, n - 1), st.sampled_from(HOSTILE_VALUES)
        )
        for col, row, value in draw(st.lists(cells, min_size=1, max_size=2)):
            bars.loc[row, col] = value
            notes.append(f"{col}[{row}]={value}")
    elif trouble == "scale":
        scale = draw(st.sampled_from([1e-300, 1e300, 1e30, 1e-30, 1e-38]))
        bars[["open", "high", "low", "close"]] *= scale
        notes.append(f"prices x {scale}")
    elif trouble == "volume":
        bars["volume"] = 10.0 ** draw(st.sampled_from([20, 25, 38, -40]))
        bars.loc[0, "volume"] = 0.0
    elif trouble == "dtype":
        damage = draw(st.sampled_from(["strings", "bools", "drop-low", "objects"]))
        col = draw(st.sampled_from(["open", "close", *(["volume"] if "volume" in bars else [])]))
        if damage == "strings":
            bars[col] = bars[col].astype(str)
            bars.loc[draw(st.integers(0, n - 1)), col] = "n/a"
        elif damage == "bools":
            bars[col] = bars[col] > bars[col].median()
        elif damage == "objects":
            bars[col] = bars[col].astype(object)
            bars.loc[draw(st.integers(0, n - 1)), col] = None
        else:
            bars = bars.drop(columns="low")
        notes.append(damage)
    elif trouble == "duplicate":
        col = draw(st.sampled_from(list(bars.columns)))
        bars[col.upper()] = bars[col]
        notes.append(col)
    style = draw(st.sampled_from(sorted(NAME_STYLES)))
    if trouble != "duplicate":
        bars = bars.rename(columns=NAME_STYLES[style])
    stamps, kind = draw(timestamps(n, hostile=trouble == "stamps"))
    return Case(bars, stamps, kind, notes)


SAMPLING = {
    "pred_len": (
        st.one_of(st.integers(1, 6), st.integers(TINY_CONTEXT + 1, TINY_CONTEXT + 6)),
        [0, -1, 10**12, 2.5, True, "5", None],
    ),
    "sample_count": (st.integers(1, 4), [0, -2, 10**9, 1.5, True, "3", None]),
    "T": (st.floats(0.05, 3.0), [0.0, -1.0, 1e-40, float("nan"), float("inf"), True, "1"]),
    "top_k": (st.integers(0, 5), [-1, 1.5, True, "2"]),
    "top_p": (st.floats(0.05, 1.0), [0.0, 1.5, float("nan"), -0.1, "0.9"]),
    "seed": (st.one_of(st.none(), st.integers(0, 2**31)), ["x", 1.5, True]),
}
LEVELS = (
    st.lists(st.floats(0.01, 0.99), min_size=1, max_size=4, unique=True),
    [[], [0.0], [1.0], [float("nan")], [0.5, 0.5], [0.5, 0.5000000001], ["a"], 0.5, None],
)
FREQ = (st.sampled_from([None, None, "D", "h", "5min", "B"]), ["-1D", "0h", "xyz", "", 5])
BATCH_SIZE = (st.integers(1, 3), [0, -1, 1.5, True])


@st.composite
def arguments(draw, **specs) -> tuple[dict, str | None]:
    """Valid values for every argument in `specs` (name: (valid strategy, hostile values)); in a
    third of the draws one of them hostile instead. Returns (values, the hostile one's name or None)."""
    values = {name: draw(valid) for name, (valid, _) in specs.items()}
    if draw(st.integers(0, 2)) > 0:
        return values, None
    fault = draw(st.sampled_from(sorted(specs)))
    values[fault] = draw(st.sampled_from(specs[fault][1]))
    return values, fault


# --- checks ------------------------------------------------------------------------------------------


def run(call):
    """(result, error, warnings caught): an error must be a ValueError or TypeError with a message;
    anything else escapes and fails the test. The outcome is counted in hypothesis' statistics."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except (ValueError, TypeError) as err:
            assert str(err).strip(), f"{type(err).__name__} without a message"
            event(f"refused: {str(err)[:40]}")
            return None, err, caught
    event("forecast")
    return result, None, caught


# the words an error may use for a hostile argument besides its own name (or the command's flag)
ARGUMENT_WORDS = {"pred_len": ("pred_len", "prediction_length"), "T": ("temperature T",)}


def check_refusal(
    error: Exception | str, clean: bool, fault: str | None, what: object, columns: list[str] | None = None
) -> None:
    """Input with nothing wrong in it is never refused; clean bars with one hostile argument are
    refused naming that argument; bars whose only fault is hostile values in `columns`, with valid
    arguments, are refused naming one of those columns."""
    assert not (clean and fault is None), f"clean input refused: {error} ({what})"
    if columns and fault is None:
        assert any(f"'{column}'" in str(error) for column in columns), f"{error!r} names none of {columns}"
        event("refused hostile values, column named")
    if clean:
        words = ARGUMENT_WORDS.get(fault, (fault,))
        assert any(word in str(error) for word in words), f"{error!r} does not name {fault!r}"
        event(f"refused {fault}, named")


def check_finite(values: np.ndarray, what: str) -> None:
    assert np.isfinite(values).all(), f"{what} holds NaN or inf"


def check_summary(table: pd.DataFrame, levels, caught, rows: int) -> None:
    """A quantile table: `rows` rows, every column of every field, finite but for realized_vol's
    documented NaN, which must come with a VolatilityWarning."""
    assert len(table) == rows
    expected = {f"{f}_mean" for f in FEATURE_COLUMNS} | {
        quantile_column(f, q) for f in FEATURE_COLUMNS for q in levels
    }
    assert expected | {"prob_close_above_last", "realized_vol", "ohlc_violation_rate"} <= set(table.columns)
    check_finite(table.drop(columns="realized_vol").select_dtypes("number").to_numpy(), "the forecast")
    if table["realized_vol"].isna().any():
        assert any(issubclass(w.category, VolatilityWarning) for w in caught), (
            "NaN realized_vol without a warning"
        )
    assert (table["realized_vol"].dropna() >= 0).all()


SAMPLING_FIELDS = ("T", "top_k", "top_p", "sample_count", "seed")
TABLE_FIELDS = ("nan_policy", "freq", "on_gap", "max_history", "min_history")


def settings_objects(args: dict, **table_options) -> dict:
    """The drawn arguments as the API takes them: the sampling fields as one `Sampling`, the table
    fields (with `table_options`, when given) as one `TableOptions`. Called inside the call under
    test, so that a hostile field is refused, naming it, by the settings object that holds it."""
    out = {k: v for k, v in args.items() if k not in SAMPLING_FIELDS + TABLE_FIELDS}
    out["sampling"] = Sampling(**{k: v for k, v in args.items() if k in SAMPLING_FIELDS})
    if table_options:
        out["table"] = TableOptions(**table_options, **{k: v for k, v in args.items() if k in TABLE_FIELDS})
    return out


def stamp_count(args: dict) -> int:
    """How many future timestamps to pass: the drawn pred_len where it is a sane int (a bad one
    is then refused for itself), else 3."""
    pred_len = args["pred_len"]
    return pred_len if type(pred_len) is int and 0 < pred_len < 100 else 3


def future_of(n: int, stamps: object = None) -> pd.DatetimeIndex:
    """n daily timestamps after any history, in the time zone of `stamps` (naive where they have
    none or cannot be read: such a call is refused for its history's timestamps anyway)."""
    try:
        zone = as_timestamps(stamps, "stamps").dt.tz if stamps is not None else None
    except (ValueError, TypeError):
        zone = None
    return pd.date_range("2030-01-01", periods=n, freq="D", tz=zone)


# --- the API -----------------------------------------------------------------------------------------


@given(case=cases(), drawn=arguments(**SAMPLING, quantile_levels=LEVELS))
def test_predict_quantiles_is_finite_or_refused(predictor, case, drawn):
    args, fault = drawn
    table, error, caught = run(
        lambda: predictor.predict_quantiles(case.bars, case.stamps, None, **settings_objects(args))
    )
    if error is None:
        check_summary(table, args["quantile_levels"], caught, args["pred_len"])
        assert table.index.is_monotonic_increasing and table.index.is_unique
    else:
        check_refusal(error, case.clean, fault, (case.notes, case.stamp_kind), case.hit_columns)


@given(case=cases(), drawn=arguments(**SAMPLING))
def test_predict_paths_is_finite_or_refused(predictor, case, drawn):
    args, fault = drawn
    paths, error, _ = run(
        lambda: predictor.predict_paths(
            case.bars, case.stamps, future_of(stamp_count(args), case.stamps), **settings_objects(args)
        )
    )
    if error is None:
        assert paths.shape == (args["sample_count"], args["pred_len"], 6)
        check_finite(paths, "the paths")
    else:
        check_refusal(error, case.clean, fault, (case.notes, case.stamp_kind), case.hit_columns)


@given(case=cases(), drawn=arguments(**SAMPLING))
def test_upstream_predict_is_finite_or_refused(predictor, case, drawn):
    args, fault = drawn
    frame, error, _ = run(
        lambda: predictor.predict(
            case.bars, case.stamps, future_of(stamp_count(args), case.stamps), verbose=False, **args
        )
    )
    if error is None:
        assert frame.shape == (args["pred_len"], 6) and list(frame.columns) == FEATURE_COLUMNS
        check_finite(frame.to_numpy(), "the forecast")
    else:
        check_refusal(error, case.clean, fault, (case.notes, case.stamp_kind), case.hit_columns)


@given(
    parts=st.lists(cases(max_rows=20), min_size=1, max_size=2),
    drawn=arguments(**SAMPLING, freq=FREQ, batch_size=BATCH_SIZE),
)
def test_predict_df_is_finite_or_refused(predictor, parts, drawn):
    args, fault = drawn
    # one table names a column one way: each part's columns as the first part names them
    names = {str(c).lower(): c for c in parts[0].frame().columns}
    frames = [case.frame() for case in parts]
    frames = [
        f.rename(columns={c: names[c.lower()] for c in f if names.get(c.lower(), c) not in f}) for f in frames
    ]
    shared = [c for c in frames[0].columns if all(c in frame for frame in frames)]
    table = pd.concat([frame[shared].assign(id=f"s{k}") for k, frame in enumerate(frames)], ignore_index=True)
    args["prediction_length"] = args.pop("pred_len")
    out, error, caught = run(
        lambda: predictor.predict_df(table, **settings_objects(args, min_history=3, on_gap="ignore"))
    )
    if error is None:
        ids = [f"s{k}" for k, case in enumerate(parts) if len(case.bars)]
        check_summary(out, (0.1, 0.5, 0.9), caught, args["prediction_length"] * len(ids))
        assert out["id"].tolist() == [one for one in ids for _ in range(args["prediction_length"])]
    else:
        hit = parts[0].hit_columns if len(parts) == 1 else []
        check_refusal(error, all(case.clean for case in parts), fault, [case.notes for case in parts], hit)


# --- the loaders -------------------------------------------------------------------------------------


@st.composite
def files(draw) -> tuple[Case, str, dict]:
    """A case written as a file: CSV (commas, semicolons with decimal commas, tabs, gzip, UTF-16,
    separate date and time columns) or Parquet, with its columns named in any case; or an empty
    or header-only file, a workbook named .csv, a truncated .csv.gz."""
    case = draw(cases(max_rows=25))
    layout = draw(
        st.sampled_from(
            ["csv", "csv", "semicolon", "tab", "gzip", "parquet", "empty", "header-only"]
            + ["utf-16", "date-time", *NOT_READABLE]
        )
    )
    names = draw(st.sampled_from([{}, {"close": "Close", "timestamps": "Date"}, {"timestamps": "datetime"}]))
    return case, layout, names


NOT_READABLE = ("workbook", "truncated-gzip")  # layouts every read refuses, naming the file


def write(case: Case, layout: str, names: dict, folder: Path) -> Path:
    frame = case.frame().rename(columns=names)
    suffix = {"parquet": ".parquet", "gzip": ".csv.gz", "truncated-gzip": ".csv.gz"}.get(layout, ".csv")
    path = folder / f"bars{suffix}"
    if layout == "date-time":  # Date,Time,open,...: the timestamps' text split at its first space
        parts = frame.pop(names.get("timestamps", "timestamps")).astype(str).str.split(" ", n=1)
        frame.insert(0, "Time", parts.str[1].fillna(""))
        frame.insert(0, "Date", parts.str[0])
        frame.to_csv(path, index=False)
    elif layout == "workbook":
        path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml" + frame.to_csv().encode())
    elif layout == "truncated-gzip":
        frame.to_csv(path, index=False)
        path.write_bytes(path.read_bytes()[: max(20, path.stat().st_size // 2)])
    elif layout == "utf-16":
        path.write_bytes(frame.to_csv(index=False, sep="\t").encode("utf-16"))
    elif layout == "empty":
        path.write_text("")
    elif layout == "header-only":
        frame.iloc[:0].to_csv(path, index=False)
    elif layout == "parquet":
        frame.to_parquet(path, index=False)
    elif layout == "semicolon":
        frame.to_csv(path, index=False, sep=";", decimal=",")
    elif layout == "tab":
        frame.to_csv(path, index=False, sep="\t")
    else:
        frame.to_csv(path, index=False)
    return path


@given(drawn=files())
def test_loaded_series_are_finite_and_ordered_or_refused_naming_the_file(drawn):
    case, layout, names = drawn
    with tempfile.TemporaryDirectory() as folder:
        path = write(case, layout, names, Path(folder))
        series, error, _ = run(lambda: load_series([path]))
    if error is None:
        (one,) = series
        assert one.bars.dtype == np.float64 and one.bars.shape == (len(case.bars), 6)
        check_finite(one.bars, "the loaded bars")
        assert one.timestamps.is_monotonic_increasing and one.timestamps.is_unique
    else:
        assert path.name in str(error), f"{error} does not name the file"
        loadable = not case.notes and case.stamp_kind in (*CLEAN_STAMPS, "unsorted")
        # a Date and a Time column are joined where the times are times of day: not "20:00:00-05:00"
        zoned_split = layout == "date-time" and case.stamp_kind != "regular"
        assert not (loadable and layout not in ("empty", "header-only", *NOT_READABLE) and not zoned_split), (
            f"clean file refused: {error} ({case.stamp_kind}, {layout})"
        )
    assert layout not in NOT_READABLE or error is not None, f"{layout} read as bars"


# --- the command line --------------------------------------------------------------------------------


@st.composite
def command_lines(draw) -> tuple[Case, list[str], str | None, str | None]:
    """A file and `kronos forecast` options: all valid, or in a third of the draws one of them (or
    the output's name) hostile."""
    case = draw(cases(max_rows=25))
    options = {
        "--steps": (st.integers(1, 20), ["0", "-3", "x", "1e3", "99999999"]),
        "--paths": (st.integers(1, 3), ["0", "-1", "2.5", "1000000000"]),
        "--temperature": (st.floats(0.1, 2.0), ["0", "-1", "1e-40", "nan", "inf"]),
        "--top-p": (st.floats(0.1, 1.0), ["0", "2", "nan"]),
        "--quantiles": (
            st.sampled_from(["0.1,0.5,0.9", "0.25,0.75"]),
            ["0,0.5", "1.5", "a,b", "0.5,0.5", ""],
        ),
        "--freq": (st.sampled_from(["D", "h"]), ["-1D", "0h", "xyz"]),
        "--lookback": (st.integers(MIN_HISTORY, 40), ["0", "-5", "2", str(MIN_HISTORY - 1)]),
        "--max-context": (
            st.integers(MIN_HISTORY, 40),
            ["0", "-1", "100000000", "4.5", str(MIN_HISTORY - 1)],
        ),
        "--threads": (st.integers(1, 2), ["0", "-1"]),
        "--seed": (st.integers(0, 99), ["x"]),
        "--calendar": (st.sampled_from(["XNYS", "xlon", "24/7"]), ["XNYZ", "", "nowhere"]),
        "--columns": (
            st.sampled_from(["close=close", "Close='close',open=\"open\""]),
            ["close='close", "shut=x", "close"],
        ),
    }
    others = sorted(set(options) - {"--steps"})
    chosen = ["--steps", *draw(st.lists(st.sampled_from(others), max_size=3, unique=True))]
    fault = draw(st.sampled_from([*chosen, "--out"])) if draw(st.integers(0, 2)) == 0 else None
    flags = []
    for flag in chosen:
        good, bad = options[flag]
        value = draw(st.sampled_from(bad)) if flag == fault else str(draw(good))
        flags.append(f"{flag}={value}")
    if draw(st.booleans()):
        flags.append("--adjust-splits")
    if draw(st.booleans()):
        flags.append("--ohlc-from-close")
        if draw(st.booleans()):
            case.bars = case.bars.drop(columns=[c for c in case.bars if c.lower() in ("open", "high", "low")])
    outs = ["f.txt", "missing/f.csv", "bars.csv"] if fault == "--out" else [None, "f.csv", "f.parquet"]
    return case, flags, fault, draw(st.sampled_from(outs))


@given(drawn=command_lines())
def test_forecast_command_writes_a_finite_table_or_exits_2_with_one_line(tiny_dir, kronos_command, drawn):
    case, flags, fault, out = drawn
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder, "bars.csv")
        case.frame().to_csv(data, index=False)
        argv = ["forecast", str(data), "--model", str(tiny_dir), "--device", "cpu", *flags]
        target = Path(folder, out) if out else None
        if target is not None:
            argv += ["--out", str(target)]
        given = data.read_bytes()
        status, stdout, lines = kronos_command(*argv)
        assert data.read_bytes() == given, "the input file was changed"
        event(f"exit {status}" + (" (clean)" if case.clean and fault is None else ""))
        errors = [line for line in lines if line.startswith("kronos forecast: error:")]
        if status == 2:
            assert len(errors) == 1 and lines[-1] == errors[0], f"not one error line: {lines}"
            assert all(line.startswith("kronos forecast: ") for line in lines), lines
            assert target in (None, data) or not target.exists(), (
                "an output file was written despite the error"
            )
            # the command forecasts from MIN_HISTORY bars or more, and says so naming them
            clean = case.clean and len(case.bars) >= MIN_HISTORY
            if case.clean and not clean and fault is None:
                assert f"a forecast needs at least {MIN_HISTORY} bars of history" in errors[0], errors[0]
            check_refusal(errors[0], clean, fault, (case.notes, case.stamp_kind), case.hit_columns)
            return
        assert status == 0 and not errors, lines
        if target is None:
            table = pd.read_csv(io.StringIO(stdout))
        else:
            table = pd.read_parquet(target) if target.suffix == ".parquet" else pd.read_csv(target)
    steps = int(next(f for f in flags if f.startswith("--steps=")).split("=")[1])
    assert len(table) == steps and "timestamps" in table
    numbers = table.drop(columns=["timestamps", "realized_vol"]).select_dtypes("number").to_numpy()
    check_finite(numbers, "the forecast file")
    if table["realized_vol"].isna().any():
        assert any("realized_vol" in line for line in lines), "NaN realized_vol without a warning line"


# --- threads -----------------------------------------------------------------------------------------


def test_threads_sharing_one_predictor_get_what_a_serial_run_gets(predictor, tiny_ohlcv):
    """Seeded calls draw from (seed, series id) alone and the predictor holds no per-call state:
    calls racing on four threads give exactly the serial results."""
    bars, stamps = tiny_ohlcv[FEATURE_COLUMNS], tiny_ohlcv["timestamps"]
    jobs = [(start, seed) for start in (0, 40, 80, 120) for seed in (1, 2)]

    def forecast(start: int, seed: int) -> np.ndarray:
        rows = slice(start, start + 48)
        return predictor.predict_paths(
            bars.iloc[rows], stamps.iloc[rows], future_of(TINY_CONTEXT + 4), TINY_CONTEXT + 4,
            sampling=Sampling(sample_count=3, seed=seed), series_id=start,
        )  # fmt: skip

    serial = {job: forecast(*job) for job in jobs}
    racing: dict = {}
    barrier = threading.Barrier(4)

    def worker(mine: list) -> None:
        barrier.wait()
        for job in mine:
            racing[job] = forecast(*job)

    threads = [threading.Thread(target=worker, args=(jobs[k::4],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert racing.keys() == serial.keys()
    for job in jobs:
        np.testing.assert_array_equal(racing[job], serial[job])


# --- cross-sectional evaluation -------------------------------------------------------------------------

CROSS_SECTION_GOOD = {
    "horizon": [5, 1],
    "rebalance": [None, 1, 7],
    "top_k": [None, 1, 2],
    "cost_bps": [10, 0, 2.5],
    "quantiles": [5, 2],
    "lookback": [None, 30],
    "start": [None, "2020-03-02"],
    "bars_per_year": [None, 252],
}
CROSS_SECTION_HOSTILE = {
    "horizon": [0, -1, 2.5, "5", None, 10**6, True],
    "rebalance": [0, -3, 1.5, "2"],
    "top_k": [0, -1, 100, 2.0],
    "cost_bps": [-1, np.nan, np.inf, "10", None, True],
    "quantiles": [1, 0, 3.0],
    "lookback": [0, -2, 1.5],
    "start": ["not a date", "2020-13-45"],
    "bars_per_year": [0, -252, np.nan, "252"],
}


@st.composite
def cross_section_settings(draw) -> tuple[dict, list[str]]:
    """Settings with zero, one or two fields hostile, and the names of those fields."""
    hostile = draw(st.lists(st.sampled_from(sorted(CROSS_SECTION_HOSTILE)), max_size=2, unique=True))
    values = {
        name: draw(st.sampled_from((CROSS_SECTION_HOSTILE if name in hostile else CROSS_SECTION_GOOD)[name]))
        for name in CROSS_SECTION_GOOD
    }
    return values, hostile


@given(drawn=cross_section_settings())
def test_cross_section_is_finite_or_refused_naming_the_setting(drawn):
    values, hostile = drawn
    universe = universe_table(10, 160, seed=1)
    try:
        result = evaluate_cross_section(universe, None, CrossSection(**values), progress=False)
    except (ValueError, TypeError) as error:
        assert hostile, f"clean settings {values} refused: {error}"
        assert any(name in str(error) for name in hostile), f"{error!r} names none of {hostile}"
        event("refused, setting named")
        return
    assert not hostile, f"hostile {hostile} accepted: {values}"
    columns = ["rank_ic_mean", "ic_mean", "turnover", "long_short_return_net", "top_k_return_net"]
    check_finite(result.summary[columns].to_numpy(), "the cross-section summary")
    event("scored")
