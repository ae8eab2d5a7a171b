"""Forecasts and backtests of many series on a Ray cluster, with Ray Data.

A series is the unit of work. A long table is cut into series (here, or for a `ray.data.Dataset`
by a shuffle on the cluster), each series becomes one row holding its whole table, and
`map_batches` hands batches of those rows to a pool of actors that each loaded the model once. A
series draws its random numbers from (seed, its id[, origin]) alone, so it gets the forecast the
local engine gives it whatever the batches, actors or nodes (on the same CPU type and torch
build: docs/scaling.md). Ray Data restarts dead actors and retries their batches; the outputs are
keyed by series, so a retried batch cannot duplicate one.

Ray is imported only when used: `pip install 'kronos[ray]'`.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import pickle
import shutil
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from kronos.evaluation.backtest import EvaluationResult, OriginBatch, OriginForecast, evaluate
from kronos.evaluation.data import read_series
from kronos.forecasting.paths import DEFAULT_QUANTILE_LEVELS, check_quantile_levels
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL, resolve_tokenizer, shipped_dir
from kronos.forecasting.schedules import split_series
from kronos.forecasting.series import positive_int
from kronos.forecasting.tables import TableLayout, load_series, long_table, split_table
from kronos.io import fsync_dir, write_atomically

ENGINES = ("local", "ray")


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError("the Ray engine needs Ray: pip install 'kronos[ray]'") from err
    return ray


# --- the command line ------------------------------------------------------------------------------


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --address, --actors and --gpus-per-actor (`kronos forecast` and `kronos evaluate`)."""
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine", choices=ENGINES, default="local",
        help="run the model here (default) or on a Ray cluster (pip install 'kronos[ray]')",
    )  # fmt: skip
    group.add_argument(
        "--address",
        help="with --engine ray: 'auto' (the cluster this machine joined) or ray://HOST:PORT (default: start one here)",
    )
    group.add_argument(
        "--actors", type=int,
        help="with --engine ray: actors, each loading the model once (default: as many as the cluster's CPUs or GPUs hold)",
    )  # fmt: skip
    group.add_argument(
        "--gpus-per-actor", type=float, default=0.0,
        help="with --engine ray: GPUs per actor, e.g. 1, or 0.5 for two actors per GPU (default 0: CPUs)",
    )  # fmt: skip


def engine_options(args: argparse.Namespace) -> dict:
    """The Ray keyword arguments of parsed engine options, checked with the flags named."""
    if args.engine == "local":
        given = [flag for flag, value in (("--address", args.address), ("--actors", args.actors)) if value]
        given += ["--gpus-per-actor"] if args.gpus_per_actor else []
        if given:
            raise ValueError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --engine ray")
        return {}
    if args.actors is not None and args.actors <= 0:
        raise ValueError(f"--actors must be a positive number, got {args.actors}")
    if not args.gpus_per_actor >= 0:
        raise ValueError(f"--gpus-per-actor must be 0 or more, got {args.gpus_per_actor}")
    return dict(address=args.address, num_actors=args.actors, num_gpus_per_actor=args.gpus_per_actor)


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

    def run(self, rows, work, batch_size: int):
        """`rows` mapped by a pool of actors that hold the model and do `work` on batches of them.

        Joins the cluster first (or starts one here). Ray Data's actor pools restart killed actors
        and retry their batches, as often as it takes.
        """
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING)
        if not self.progress:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        rows.context.enable_progress_bars = self.progress
        size = self.num_actors or self._fitting(ray.cluster_resources())
        return rows.map_batches(
            _ModelActor,
            batch_size=batch_size,
            batch_format="pandas",
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
        items = [{"batch": i, "work": pickle.dumps(batch)} for i, batch in enumerate(batches)]
        work = ray.data.from_items(items, override_num_blocks=len(items))
        done = self.run(work, _OriginWork(forecast), 1)
        rows = _collect(done, "batch", len(items)).sort_values("batch")
        return [pickle.loads(paths) for paths in rows["paths"]]


def _absolute(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() and not shipped_dir(name).is_dir() else name


class _ModelActor:
    """A Ray actor: the model, loaded once, doing `work` on batches. Bad input in a batch (a
    ValueError naming the series and row) comes back as data: a failed batch would be retried."""

    def __init__(self, engine: RayEngine, work):
        self.predictor = engine.load()
        self.work = work

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        try:
            return self.work(self.predictor, batch).assign(error=b"")
        except ValueError as err:
            return pd.DataFrame({"error": [pickle.dumps(err)]})


@dataclass(frozen=True)
class _OriginWork:
    """Batches of backtest origins -> their sample paths."""

    forecast: OriginForecast

    def __call__(self, predictor: KronosPredictor, batch: pd.DataFrame) -> pd.DataFrame:
        paths = [pickle.dumps(self.forecast(predictor, pickle.loads(work))) for work in batch["work"]]
        return pd.DataFrame({"batch": batch["batch"], "paths": paths})


@dataclass(frozen=True)
class _SeriesWork:
    """Batches of whole series (one table per row) -> `predict_df`'s forecast of each, pickled, or
    with `out` written to the series' own Parquet file."""

    id_column: str
    timestamp_column: str
    options: dict
    out: str | None

    def __call__(self, predictor: KronosPredictor, batch: pd.DataFrame) -> pd.DataFrame:
        table = pd.concat([pickle.loads(one) for one in batch["table"]])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            forecast = predictor.predict_df(table, self.id_column, self.timestamp_column, **self.options)
        steps = self.options["prediction_length"]
        # predict_df gives `steps` rows per series, in the order the series come
        tables = [
            forecast.iloc[k * steps : (k + 1) * steps].reset_index(drop=True) for k in range(len(batch))
        ]
        if self.out is not None:
            for series, one in zip(batch["series"], tables):
                path = series_file(self.out, self.id_column, series)
                path.parent.mkdir(parents=True, exist_ok=True)
                # staged under a hidden name (Parquet readers skip it) and renamed: whole or absent
                write_atomically(path, partial(one.drop(columns=self.id_column).to_parquet, index=False))
        notes = pickle.dumps([(w.category, str(w.message)) for w in caught])
        return pd.DataFrame(
            {
                "series": batch["series"],
                "order": batch["order"],
                "table": [b"" if self.out is not None else pickle.dumps(one) for one in tables],
                "warnings": notes,
            }
        )


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


def _collect(done, key: str, expected: int) -> pd.DataFrame:
    """The actors' output rows, one per `key`, or the first bad-input error raised as itself (which
    stops the run). A retried batch may have delivered its rows twice: they are equal."""
    parts = []
    for part in done.iter_batches(batch_size=None, batch_format="pandas"):
        failed = part["error"].map(len).to_numpy() > 0
        if failed.any():
            raise pickle.loads(part["error"][failed].iloc[0])
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True).drop_duplicates(key, ignore_index=True)
    if len(rows) != expected:
        raise RuntimeError(f"the Ray run returned results for {len(rows)} {key} values of {expected}")
    return rows


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
    paths: int = 20,
    seed: int | None = 0,
    batch_size: int = 32,
    out: str | Path | None = None,
    **predict_options,
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
    the shipped model, as many actors as the cluster holds). `steps`, `quantile_levels`, `paths`
    (sample paths per series), `seed` and `predict_options` (T, top_k, top_p, freq, on_gap,
    nan_policy, max_history, min_history, repair_ohlc) mean what they mean to `predict_df`, and
    so do the numbers: with a seed, each series draws from (seed, its id) alone.

    Returns the forecasts as one long table. With `out` (a new or empty folder) each series is
    written instead to `out/<id_column>=<id>/forecast.parquet` (`series_file`) and None is
    returned; the folder appears whole, once every series is written, or not at all.
    """
    engine = _engine(engine)
    batch_size = positive_int(batch_size, "batch_size")
    options = dict(
        prediction_length=positive_int(steps, "steps"),
        quantile_levels=check_quantile_levels(quantile_levels),
        sample_count=positive_int(paths, "paths"),
        seed=seed,
        batch_size=batch_size,
        **predict_options,
    )
    target = _new_folder(out)
    is_dataset = isinstance(source, import_ray().data.Dataset)
    series, id_column, timestamp_column = _series_rows(
        engine, source, id_column, timestamp_column, columns, options.get("nan_policy", "raise"), batch_size
    )
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}") if target else None
    try:
        work = _SeriesWork(id_column, timestamp_column, options, None if staging is None else str(staging))
        done = engine.run(series, work, batch_size)
        rows = _collect(done, "series", series.count())
        if target is not None and staging is not None:
            _publish(staging, target)
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging)
    for category, message in dict.fromkeys(
        note for notes in rows["warnings"] for note in pickle.loads(notes)
    ):
        warnings.warn(message, category, stacklevel=2)
    if target is not None:
        return None
    rows = rows.sort_values("series" if is_dataset else "order", kind="stable")
    table = pd.concat([pickle.loads(one) for one in rows["table"]], ignore_index=True)
    table.attrs["ohlc_violation_rate"] = float(table["ohlc_violation_rate"].mean())
    return table


def _series_rows(engine, source, id_column, timestamp_column, columns, nan_policy, batch_size):
    """Whole series as rows (series id, order, pickled table) in blocks of about `batch_size`,
    with the id and timestamp columns of their tables."""
    ray = import_ray()
    if columns and isinstance(source, (pd.DataFrame, ray.data.Dataset)):
        raise ValueError(
            "columns= maps the columns of files; name a table's columns as predict_df wants them"
        )
    if isinstance(source, ray.data.Dataset):
        id_column, timestamp_column = id_column or "id", timestamp_column or "timestamps"
        names = source.schema().names
        missing = [c for c in (id_column, timestamp_column) if c not in names]
        if missing:
            raise ValueError(f"the dataset has no column(s) {missing}; it has {names}")
        grouped = (
            source.groupby(id_column, num_partitions=4 * (engine.num_actors or 2))
            .map_groups(_pack_series, fn_args=(id_column, timestamp_column), batch_format="pandas")
            .repartition(target_num_rows_per_block=batch_size)
        )
        grouped.context.enable_progress_bars = engine.progress
        # materialised before the actors start, so that they never hold the CPUs these tasks need
        return grouped.materialize(), id_column, timestamp_column
    if isinstance(source, pd.DataFrame):
        table, id_column, timestamp_column = source, id_column or "id", timestamp_column or "timestamps"
    else:
        try:
            layout = TableLayout(id_column, columns or {}, timestamp_column)
        except ValueError as err:
            raise ValueError(f"columns: {err}") from err
        table = long_table(load_series(_files(source), layout))
        id_column, timestamp_column = "symbol", "timestamps"
    split_series(table, id_column, timestamp_column, nan_policy)  # bad input fails here, before any actor
    rows = [
        {"series": series, "order": k, "table": pickle.dumps(group)}
        for k, (series, group) in enumerate(table.groupby(id_column, sort=False))
    ]
    blocks = -(-len(rows) // batch_size)
    return ray.data.from_items(rows, override_num_blocks=blocks), id_column, timestamp_column


def _pack_series(group: pd.DataFrame, id_column: str, timestamp_column: str) -> pd.DataFrame:
    """One series of a dataset as one row: its rows sorted by time and labelled (id, timestamp)."""
    try:
        stamps = pd.to_datetime(group[timestamp_column], errors="coerce")
        group = group.iloc[np.argsort(stamps.to_numpy(), kind="stable")]
    except (ValueError, TypeError):
        pass  # unsortable timestamps: predict_df names what is wrong with them
    group.index = pd.MultiIndex.from_arrays([group[id_column], group[timestamp_column]])
    return pd.DataFrame({"series": [group[id_column].iloc[0]], "order": [0], "table": [pickle.dumps(group)]})


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
    engine: RayEngine | None = None,
    *,
    id_column: str | None = None,
    timestamp_column: str | None = None,
    **evaluate_options,
) -> EvaluationResult:
    """`kronos.evaluation.evaluate` with the model's forecasts made by Ray actors.

    `source`: a `ray.data.Dataset` or a DataFrame holding a long table with `id_column`, file(s),
    folder(s) or glob pattern(s) as `kronos evaluate` reads them, or what `evaluate` takes. The
    series, the baselines, the scores and the report stay here; the actors return the sample
    paths of each batch of origins, which draw from (seed, series, origin) alone, so the result
    is the local engine's. `engine` holds the model and the actors (default `RayEngine()`);
    `evaluate_options` are `evaluate`'s (steps, lookback, origins, every, paths, seed,
    batch_size, progress, ...).
    """
    engine = _engine(engine)
    # loaded here too, for its lookback and context; the actors make the forecasts
    predictor = KronosPredictor.from_pretrained(
        engine.model, engine.tokenizer, device="cpu", **engine.predictor_options
    )
    series = _backtest_series(source, id_column, timestamp_column)
    return evaluate(series, predictor, engine=engine, **evaluate_options)


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
