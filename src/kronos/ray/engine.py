"""Forecasts and backtests of many series on a Ray cluster, with Ray Data.

A series is the unit of work. A long table is cut into series (here, or for a `ray.data.Dataset`
by a shuffle on the cluster), each series becomes one Arrow row whose columns list its values,
and `map_batches` hands blocks of those rows to a pool of actors that each loaded the model once.
Forecasts come back as tables and numpy arrays; no object is serialised by hand. A series draws its
random numbers from (seed, its id[, origin]) alone, so it gets the forecast the local engine
gives it whatever the blocks, actors or nodes (on the same CPU type and torch build:
docs/scaling.md). Ray Data restarts dead actors and retries their blocks; the outputs are keyed
by series, so a retried block cannot duplicate one.

Ray is imported only when used: `pip install 'kronos-forecasting[ray]'`.
"""

from __future__ import annotations

import glob
import importlib
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
import pandas as pd

from kronos.engine.sampling import Sampling
from kronos.evaluation.backtest import Backtest, OriginBatch, OriginForecast, evaluate
from kronos.evaluation.data import read_series
from kronos.evaluation.result import EvaluationResult
from kronos.forecasting.calibration import Calibration
from kronos.forecasting.core import RUN_SEED
from kronos.forecasting.paths import DEFAULT_QUANTILE_LEVELS, check_quantile_levels
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL, resolve_tokenizer, shipped_dir
from kronos.forecasting.series import FEATURE_COLUMNS, Series, checked_instance, positive_int
from kronos.forecasting.tables import (
    TABLE_OPTIONS,
    TableLayout,
    TableOptions,
    load_series,
    long_table,
    split_table,
)
from kronos.io import fsync_dir, write_atomically

if (
    TYPE_CHECKING
):  # at run time pyarrow comes with Ray (import_arrow): the CLI imports this module without either
    import pyarrow as pa

ENGINES = ("local", "ray")


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError("the Ray engine needs Ray: pip install 'kronos-forecasting[ray]'") from err
    return ray


def import_arrow():
    """pyarrow, in which Ray Data moves the series (installed with Ray by the ray extra)."""
    try:
        import pyarrow
    except ImportError as err:
        raise ImportError("the Ray engine needs pyarrow: pip install 'kronos-forecasting[ray]'") from err
    return pyarrow


# --- the model and the actors that hold it ---------------------------------------------------------


@dataclass(frozen=True)
class RayEngine:
    """A model and the Ray actors that run it. Each actor loads `model` once
    (`KronosPredictor.from_pretrained` with `predictor_options`), on a GPU when
    `num_gpus_per_actor` > 0, else with `num_cpus_per_actor` torch threads.

    `evaluate(..., engine=RayEngine(...))` runs a backtest's model forecasts on the actors;
    `forecast_dataset` runs long tables. `address` None starts a cluster on this machine unless
    this process is connected to one already, which is then used as it is. `progress` shows
    Ray Data's progress bars and log lines.
    """

    model: str = DEFAULT_MODEL
    tokenizer: str | None = None
    predictor_options: dict = field(default_factory=dict)
    address: str | None = None
    num_actors: int | None = None
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.num_actors is not None:
            positive_int(self.num_actors, "num_actors")
        if not self.num_cpus_per_actor > 0:
            raise ValueError(f"num_cpus_per_actor must be positive, got {self.num_cpus_per_actor!r}")
        if not self.num_gpus_per_actor >= 0:
            raise ValueError(f"num_gpus_per_actor must be 0 or more, got {self.num_gpus_per_actor!r}")
        if "device" in self.predictor_options:
            raise ValueError(
                "predictor_options may not name a device: actors use a GPU when num_gpus_per_actor > 0, else the CPU"
            )
        # paths resolve here, where they were given (an actor's working directory may differ), and a
        # model that cannot load fails here rather than in every actor
        object.__setattr__(self, "model", _absolute(self.model))
        object.__setattr__(self, "tokenizer", self.tokenizer and _absolute(self.tokenizer))
        resolve_tokenizer(self.model, self.tokenizer)

    def load(self) -> KronosPredictor:
        """The predictor, in an actor."""
        import torch

        torch.set_num_threads(max(1, int(self.num_cpus_per_actor)))
        device = "cuda" if self.num_gpus_per_actor else "cpu"
        return KronosPredictor.from_pretrained(
            self.model, self.tokenizer, device=device, **self.predictor_options
        )

    def run(self, blocks, work):
        """`blocks` (a `ray.data.Dataset`) mapped, one block at a time (as `work.batch_format`), by
        a pool of actors that hold the model and do `work` on each.

        Joins the cluster first (or starts one here). Ray Data's actor pools restart killed actors
        and retry their blocks, as often as it takes.
        """
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING)
        if not self.progress:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        blocks.context.enable_progress_bars = self.progress
        size = self.num_actors or self._fitting(ray.cluster_resources())
        return blocks.map_batches(
            _ModelActor,
            batch_size=None,
            batch_format=work.batch_format,
            fn_constructor_kwargs=dict(engine=self, work=work),
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=self.num_cpus_per_actor,
            num_gpus=self.num_gpus_per_actor,
        )

    def _fitting(self, resources: dict) -> int:
        """As many actors as the cluster's CPUs (and GPUs, when asked for) hold."""
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        count = cpus // self.num_cpus_per_actor
        if self.num_gpus_per_actor:
            count = min(count, gpus // self.num_gpus_per_actor)
        if count < 1:
            raise ValueError(
                f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs: not enough for one actor of "
                f"{self.num_cpus_per_actor:g} CPUs and {self.num_gpus_per_actor:g} GPUs"
            )
        return int(count)

    def __call__(self, forecast: OriginForecast, batches: Iterable[OriginBatch]) -> list[np.ndarray]:
        """A backtest's batches of origins, forecast by the actors; their paths in order."""
        ray = import_ray()
        blocks, start = [], 0
        for batch in batches:
            blocks.append(_origin_rows(batch, start))
            start += len(batch.keys)
        parts = _results(self.run(ray.data.from_pandas(blocks), _OriginWork(forecast)))
        positions = np.concatenate([part.column("position").to_numpy() for part in parts])
        paths = np.concatenate([chunk.to_numpy() for part in parts for chunk in part.column("paths").chunks])
        # a retried block may have delivered its origins twice (their paths are equal): the first
        # of each position, in order of position
        _, first = np.unique(positions, return_index=True)
        _check_count(len(first), start, "origins")
        return [paths[first]]


def _absolute(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() and not shipped_dir(name).is_dir() else name


class _ModelActor:
    """A Ray actor: the model, loaded once, doing `work` on blocks. Bad input in a block (a
    ValueError naming the series and row) comes back as data, its message in the `error` column:
    a failed block would be retried."""

    def __init__(self, engine: RayEngine, work):
        self.predictor = engine.load()
        self.work = work

    def __call__(self, block) -> pd.DataFrame:
        try:
            return self.work(self.predictor, block).assign(error="")
        except ValueError as err:
            return pd.DataFrame({"error": [str(err)]})


HISTORY, TARGET = "history", "target"  # the rows of an origin: its lookback bars, its target stamps


def _origin_rows(batch: OriginBatch, start: int) -> pd.DataFrame:
    """A batch of origins as one long table: per origin (numbered from `start`), its lookback
    bars and the timestamps of its target bars, with the origin's series and row."""
    parts = []
    for k, ((name, t), window, future) in enumerate(zip(batch.keys, batch.windows, batch.futures)):
        target = pd.DataFrame({"timestamps": future})
        rows = pd.concat([window.frame().assign(part=HISTORY), target.assign(part=TARGET)], ignore_index=True)
        parts.append(rows.assign(position=start + k, series=name, origin=t))
    return pd.concat(parts, ignore_index=True)


def _origin_batch(block: pd.DataFrame) -> tuple[np.ndarray, OriginBatch]:
    """The positions and the `OriginBatch` of a block of `_origin_rows`."""
    positions, windows, futures = [], [], []
    for position, rows in block.groupby("position", sort=False):
        history, name = rows[rows["part"] == HISTORY], str(rows["series"].iloc[0])
        key = (name, int(rows["origin"].iloc[0]))
        positions.append(position)
        windows.append(Series(history[FEATURE_COLUMNS].to_numpy(), history["timestamps"], key, name))
        futures.append(pd.DatetimeIndex(rows.loc[rows["part"] == TARGET, "timestamps"]))
    return np.array(positions), OriginBatch(windows, futures)


@dataclass(frozen=True)
class _OriginWork:
    """A block of backtest origins -> their sample paths, [P, H, 6] per origin."""

    forecast: OriginForecast
    batch_format: str = "pandas"

    def __call__(self, predictor: KronosPredictor, block: pd.DataFrame) -> pd.DataFrame:
        positions, batch = _origin_batch(block)
        return pd.DataFrame({"position": positions, "paths": list(self.forecast(predictor, batch))})


@dataclass(frozen=True)
class _SeriesWork:
    """A block of whole series, one row each (`_nested`) -> `predict_df`'s forecast of each, as a
    long table, or with `out` written to the series' own Parquet file (then one row per series).
    The warnings raised come back in the `warnings` column of the first row (`_warning_notes`).
    `label_rows` names each row by (id, timestamp) for the errors of rows a shuffle reordered."""

    id_column: str
    timestamp_column: str
    options: dict
    out: str | None
    label_rows: bool
    batch_format: str = "pyarrow"

    def __call__(self, predictor: KronosPredictor, block: pa.Table) -> pd.DataFrame:
        table = _unnested(block)
        if self.label_rows:
            table = _named_rows(table, self.id_column, self.timestamp_column)
        options = self.options
        if options["sampling"] is None:  # the model's, known only where the model is; seeded, as
            # unseeded draws would depend on which actor and block a series meets
            options = {**options, "sampling": predictor.sampling_with(seed=RUN_SEED)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            forecast = predictor.predict_df(table, self.id_column, self.timestamp_column, **options)
        if self.out is not None:
            self._write(forecast)
            forecast = forecast[[self.id_column]].drop_duplicates(ignore_index=True)
        notes = [json.dumps(_warning_notes(caught))] + [""] * (len(forecast) - 1)
        return forecast.assign(warnings=notes)

    def _write(self, forecast: pd.DataFrame) -> None:
        for series, one in forecast.groupby(self.id_column, sort=False):
            path = series_file(self.out or "", self.id_column, series)
            path.parent.mkdir(parents=True, exist_ok=True)
            table = one.drop(columns=self.id_column).reset_index(drop=True)
            # staged under a hidden name (Parquet readers skip it) and renamed: whole or absent
            write_atomically(path, partial(table.to_parquet, index=False))


def _warning_notes(caught: list[warnings.WarningMessage]) -> list[list[str]]:
    """Each warning as [module of its category, category name, message]."""
    return [[w.category.__module__, w.category.__qualname__, str(w.message)] for w in caught]


def _warn_again(notes: Iterable[str]) -> None:
    """The actors' warnings, each once, raised here as their own category (UserWarning when the
    category cannot be found here)."""
    seen = dict.fromkeys(tuple(note) for text in notes if text for note in json.loads(text))
    for module, name, message in seen:
        category = getattr(importlib.import_module(module), name, None)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = UserWarning
        warnings.warn(message, category, stacklevel=3)


def series_file(out: str | Path, id_column: str, series: object) -> Path:
    """Where `forecast_dataset(..., out=out)` puts a series: a Hive partition by id, one file."""
    return Path(out, f"{id_column}={quote(str(series), safe='')}", "forecast.parquet")


def _publish(staging: Path, target: Path) -> None:
    """The staged folder in place of the empty target, less files left by actors killed while writing."""
    for unfinished in staging.glob("*/.*"):
        unfinished.unlink()
    target.rmdir()
    os.replace(staging, target)
    fsync_dir(target.parent)


def _results(done) -> list[pa.Table]:
    """The actors' output blocks, or the first bad-input error raised as a ValueError with its
    message (which stops the run)."""
    parts = []
    for part in done.iter_batches(batch_size=None, batch_format="pyarrow"):
        errors = [error for error in part.column("error").to_pylist() if error]
        if errors:
            raise ValueError(errors[0])
        parts.append(part.drop_columns(["error"]))
    return parts


def _check_count(found: int, expected: int, what: str) -> None:
    if found != expected:
        raise RuntimeError(f"the Ray run returned results for {found} {what} of {expected}")


# --- many series --------------------------------------------------------------------------------------


def forecast_dataset(
    source,
    engine: RayEngine | None = None,
    *,
    steps: int,
    id_column: str | None = None,
    timestamp_column: str | None = None,
    columns: dict[str, str] | None = None,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
    sampling: Sampling | None = None,
    table: TableOptions = TABLE_OPTIONS,
    batch_size: int = 32,
    repair_ohlc: bool = True,
    calibration: Mapping[object, Calibration] | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame | None:
    """`KronosPredictor.predict_df` for every series of `source`, on Ray actors.

    `source` is one of:
    - a `ray.data.Dataset`: a long table with `id_column` (default "id"), `timestamp_column`
      (default "timestamps") and the OHLCV columns. The cluster groups its rows by series; a
      shuffle does not keep their order, so each series is sorted by time, and errors name a
      row by its (id, timestamp). Series come out sorted by id.
    - a pandas DataFrame, as `predict_df` takes it: checked here first, so that its errors name
      its rows and come before any actor starts. Series come out in order of first appearance.
    - file(s), folder(s) or glob pattern(s) of CSV or Parquet, read here as `kronos forecast`
      reads them (`kronos.forecasting.tables.load_series`: one series per file, or long tables split by
      `id_column`; `columns` maps fields to the files' columns). The id column is "symbol".

    Batches of `batch_size` whole series go to the actors of `engine` (default `RayEngine()`:
    the shipped model, as many actors as the cluster holds). `steps` is `predict_df`'s
    `prediction_length`; `quantile_levels`, `sampling`, `table`, `repair_ohlc` and `calibration`
    mean what they mean to `predict_df`, and so do the numbers: with a seed, each series draws from
    (seed, its id) alone. `sampling` None: the model's `default_sampling` seeded with RUN_SEED.

    Returns the forecasts as one long table. With `out` (a new or empty folder) each series is
    written instead to `out/<id_column>=<id>/forecast.parquet` (`series_file`) and None is
    returned; the folder appears whole, once every series is written, or not at all.
    """
    pa = import_arrow()
    engine = _engine(engine)
    batch_size = positive_int(batch_size, "batch_size")
    options = dict(
        prediction_length=positive_int(steps, "steps"),
        quantile_levels=check_quantile_levels(quantile_levels),
        sampling=None
        if sampling is None
        else checked_instance(sampling, Sampling, "sampling", "Sampling(sample_count=50, seed=0)"),
        table=checked_instance(table, TableOptions, "table", "TableOptions(nan_policy='ffill')"),
        batch_size=batch_size,
        repair_ohlc=repair_ohlc,
        calibration=calibration,
    )
    target = _new_folder(out)
    series = _series_blocks(
        engine, source, id_column, timestamp_column, columns, table.nan_policy, batch_size
    )
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}") if target else None
    try:
        work = _SeriesWork(
            series.id_column,
            series.timestamp_column,
            options,
            None if staging is None else str(staging),
            label_rows=series.order is None,
        )
        rows = pa.concat_tables(_results(engine.run(series.blocks, work))).to_pandas()
        # a retried block may have delivered its series twice: they are equal
        key = [series.id_column] if staging else [series.id_column, series.timestamp_column]
        rows = rows.drop_duplicates(key, ignore_index=True)
        _check_count(rows[series.id_column].nunique(), series.count, "series")
        if target is not None and staging is not None:
            _publish(staging, target)
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging)
    _warn_again(rows.pop("warnings"))
    if target is not None:
        return None
    return series.ordered(rows)


@dataclass(frozen=True)
class _SeriesBlocks:
    """Whole series in blocks for the actors, one row each (`_nested`), with the id and timestamp
    columns of their tables and how many there are. `order` maps ids to their place in the
    output (None: sorted by id)."""

    blocks: object
    id_column: str
    timestamp_column: str
    count: int
    order: dict | None

    def ordered(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The collected forecast rows as one long table, series in their order, each in time order."""
        ids = rows[self.id_column]
        rank = ids if self.order is None else ids.map(self.order)
        table = rows.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)
        table.attrs["ohlc_violation_rate"] = float(table["ohlc_violation_rate"].mean())
        return table


def _series_blocks(
    engine, source, id_column, timestamp_column, columns, nan_policy, batch_size
) -> _SeriesBlocks:
    """`source` as whole series in blocks of about `batch_size` series."""
    pa = import_arrow()
    ray = import_ray()
    if columns and isinstance(source, (pd.DataFrame, ray.data.Dataset)):
        raise ValueError(
            "columns= maps the columns of files; name a table's columns as predict_df wants them"
        )
    if isinstance(source, ray.data.Dataset):
        return _dataset_blocks(engine, source, id_column or "id", timestamp_column or "timestamps")
    if isinstance(source, pd.DataFrame):
        table, id_column, timestamp_column = source, id_column or "id", timestamp_column or "timestamps"
    else:
        try:
            layout = TableLayout(id_column, columns or {}, timestamp_column)
        except ValueError as err:
            raise ValueError(f"columns: {err}") from err
        table = long_table(load_series(_files(source), layout))
        id_column, timestamp_column = "symbol", "timestamps"
    # bad input fails here, before any actor, as predict_df refuses it
    split_table(
        table,
        "df",
        TableLayout(id_column, timestamp_column=timestamp_column),
        as_given=True,
        nan_policy=nan_policy,
    )
    groups = [_nested(group) for _, group in table.groupby(id_column, sort=False)]
    blocks = [pa.concat_tables(groups[k : k + batch_size]) for k in range(0, len(groups), batch_size)]
    order = {series: k for k, series in enumerate(table[id_column].drop_duplicates())}
    return _SeriesBlocks(ray.data.from_arrow(blocks), id_column, timestamp_column, len(groups), order)


def _dataset_blocks(engine, source, id_column: str, timestamp_column: str) -> _SeriesBlocks:
    """A dataset's rows grouped by series on the cluster, each series sorted by time (`_by_time`)."""
    names = source.schema().names
    missing = [c for c in (id_column, timestamp_column) if c not in names]
    if missing:
        raise ValueError(f"the dataset has no column(s) {missing}; it has {names}")
    grouped = source.groupby(id_column, num_partitions=4 * (engine.num_actors or 2)).map_groups(
        _by_time, fn_args=(timestamp_column,), batch_format="pandas"
    )
    grouped.context.enable_progress_bars = engine.progress
    # materialised before the actors start, so that they never hold the CPUs these tasks need
    grouped = grouped.materialize()
    return _SeriesBlocks(grouped, id_column, timestamp_column, grouped.count(), None)


def _by_time(group: pd.DataFrame, timestamp_column: str) -> pa.Table:
    """One series of a dataset as one row (`_nested`), its rows sorted by time."""
    try:
        stamps = pd.to_datetime(group[timestamp_column], errors="coerce")
        group = group.iloc[np.argsort(stamps.to_numpy(), kind="stable")]
    except (ValueError, TypeError):
        pass  # unsortable timestamps: predict_df names what is wrong with them
    return _nested(group)


def _named_rows(table: pd.DataFrame, id_column: str, timestamp_column: str) -> pd.DataFrame:
    """The table with its rows named (id, timestamp), as errors name them."""
    return table.set_axis(pd.MultiIndex.from_arrays([table[id_column], table[timestamp_column]]))


def _nested(series: pd.DataFrame) -> pa.Table:
    """A series' long table as one row, each column the list of its values: a block boundary
    never cuts a series in two."""
    pa = import_arrow()
    flat = pa.Table.from_pandas(series, preserve_index=False)
    offsets = pa.array([0, len(series)], pa.int32())
    return pa.table(
        {
            name: pa.ListArray.from_arrays(offsets, column.combine_chunks())
            for name, column in zip(flat.column_names, flat.columns)
        }
    )


def _unnested(block: pa.Table) -> pd.DataFrame:
    """The long table of a block of `_nested` series."""
    pa = import_arrow()
    return pa.table(
        {name: block.column(name).combine_chunks().flatten() for name in block.column_names}
    ).to_pandas()


def _files(source) -> list[str | Path]:
    """Paths as given, glob patterns expanded (sorted); folders stay folders for `load_series`."""
    files: list[str | Path] = []
    for one in [source] if isinstance(source, (str, Path)) else source:
        if glob.has_magic(str(one)):
            matched = sorted(glob.glob(str(one)))
            if not matched:
                raise FileNotFoundError(f"no file matches {str(one)!r}")
            files.extend(matched)
        else:
            files.append(one)
    return files


def _new_folder(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"out {str(out)!r} is not an empty folder: give each run a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    return out


# --- backtests -----------------------------------------------------------------------------------------


def evaluate_dataset(
    source,
    backtest: Backtest,
    engine: RayEngine | None = None,
    *,
    id_column: str | None = None,
    timestamp_column: str | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """`kronos.evaluation.evaluate` with the model's forecasts made by Ray actors.

    `source`: a `ray.data.Dataset` or a DataFrame holding a long table with `id_column`, file(s),
    folder(s) or glob pattern(s) as `kronos evaluate` reads them, or what `evaluate` takes. The
    series, the baselines, the scores and the report stay here; the actors return the sample
    paths of each batch of origins, which draw from (seed, series, origin) alone, so the result
    is the local engine's. `engine` holds the model and the actors (default `RayEngine()`).
    """
    engine = _engine(engine)
    # loaded here too, for its lookback and context; the actors make the forecasts
    predictor = KronosPredictor.from_pretrained(
        engine.model, engine.tokenizer, device="cpu", **engine.predictor_options
    )
    series = _backtest_series(source, id_column, timestamp_column)
    return evaluate(series, predictor, backtest, engine=engine, progress=progress)


def _engine(engine: RayEngine | None) -> RayEngine:
    if engine is None:
        return RayEngine()
    if not isinstance(engine, RayEngine):
        raise TypeError(
            f"engine must be a RayEngine, e.g. RayEngine(model, num_actors=4), got {type(engine).__name__} {engine!r}"
        )
    return engine


def _backtest_series(source, id_column: str | None, timestamp_column: str | None):
    if isinstance(source, import_ray().data.Dataset):
        source = source.to_pandas()
    if isinstance(source, pd.DataFrame) and id_column:
        return {
            one.key: one
            for one in split_table(source, "data", TableLayout(id_column, timestamp_column=timestamp_column))
        }
    if isinstance(source, (str, Path, list, tuple)):
        return read_series(_files(source), id_column, timestamp_column)
    return source
