"""kronos.ray.engine on a local two-CPU cluster: forecasts and backtests equal the local engine's
bit for bit, a killed actor loses and duplicates no series, and errors come back as the local
engine words them."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch

from kronos import KronosPredictor
from kronos.commands.main import main
from kronos.engine.sampling import Sampling
from kronos.ray.engine import RayEngine, _by_time, _named_rows, _unnested, forecast_dataset, series_file

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=150 * 2**20,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    yield
    ray.shutdown()


def universe(n_series: int, n_bars: int, seed: int = 0) -> pd.DataFrame:
    """A long table of business-day random walks, one `ticker` per series."""
    rng = np.random.default_rng(seed)
    close = rng.uniform(20, 200, (n_series, 1)) * np.exp(
        np.cumsum(rng.normal(0, 0.01, (n_series, n_bars)), axis=1)
    )
    open_ = close * np.exp(rng.normal(0, 0.002, close.shape))
    return pd.DataFrame(
        {
            "ticker": np.repeat([f"T{i:02d}" for i in range(n_series)], n_bars),
            "timestamps": np.tile(pd.bdate_range("2024-01-01", periods=n_bars), n_series),
            "open": open_.ravel(),
            "high": np.maximum(open_, close).ravel() * 1.004,
            "low": np.minimum(open_, close).ravel() * 0.996,
            "close": close.ravel(),
            "volume": rng.lognormal(8, 0.3, close.shape).round().ravel(),
        }
    )


class ActorKiller(threading.Thread):
    """SIGKILLs one forecasting actor as soon as the first series is written, while others remain."""

    def __init__(self, out: Path):
        super().__init__(daemon=True)
        self.out = out
        self.stop = threading.Event()
        self.killed: int | None = None
        self.written_at_kill = 0

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            # the forecasts are staged in a hidden folder beside `out` until every series is written
            written = len(list(self.out.parent.glob(f".{self.out.name}.*/*/forecast.parquet")))
            actors = forecasting_actors()
            if written and actors:
                self.written_at_kill, self.killed = written, min(actors)
                os.kill(self.killed, signal.SIGKILL)
            time.sleep(0.02)


def forecasting_actors() -> set[int]:
    """Process ids of the Ray actors that hold the model (Ray names its processes after them)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if command.startswith(b"ray::MapWorker(MapBatches(_ModelActor))"):
            pids.add(int(entry.name))
    return pids


def irregular_universe() -> pd.DataFrame:
    """Three series, of which T01's bars are an hour later each day: no schedule fits them."""
    table = universe(3, 40)
    irregular = table["ticker"] == "T01"
    table.loc[irregular, "timestamps"] += pd.to_timedelta(np.arange(irregular.sum()) % 3, "h")
    return table


def test_forecast_command_is_identical_locally_in_batches_of_one_and_on_ray(cluster, tmp_path, capsys):
    path = tmp_path / "universe.csv"
    universe(7, 60).to_csv(path, index=False)
    args = ["forecast", str(path), "--id-column", "ticker", "--steps", "5", "--paths", "4", "--seed", "7"]
    runs = {
        "local": [],
        "local, batches of one": ["--batch-size", "1"],
        "ray": ["--engine", "ray", "--actors", "2", "--batch-size", "2"],
    }
    tables = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.parquet"
        assert main([*args, *extra, "--out", str(out)]) == 0, capsys.readouterr().err
        tables[name] = pd.read_parquet(out)
    local = tables["local"]
    assert len(local) == 35 and local["symbol"].tolist() == [f"T{i:02d}" for i in range(7) for _ in range(5)]
    assert np.isfinite(local.drop(columns=["symbol", "timestamps"]).to_numpy()).all()
    for name in ("local, batches of one", "ray"):
        pd.testing.assert_frame_equal(tables[name], local, check_exact=True, obj=name)


def test_a_killed_actor_is_replaced_and_no_series_is_lost_or_duplicated(cluster, tmp_path):
    table = universe(16, 60, seed=1)
    settings = dict(quantile_levels=(0.1, 0.5, 0.9), sampling=Sampling(sample_count=8, seed=3))
    local = KronosPredictor.from_pretrained(device="cpu").predict_df(
        table, "ticker", prediction_length=8, **settings
    )
    out = tmp_path / "forecasts"
    killer = ActorKiller(out)
    killer.start()
    try:
        # rows shuffled: the cluster groups them by series and sorts each by time
        shuffled = ray.data.from_pandas(table.sample(frac=1, random_state=0))
        forecast_dataset(
            shuffled,
            RayEngine(num_actors=2),
            id_column="ticker",
            steps=8,
            batch_size=1,
            out=out,
            **settings,
        )
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None and killer.written_at_kill < 16, "no actor was killed mid-run"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [f"ticker=T{i:02d}/forecast.parquet" for i in range(16)]  # no staging file left
    for ticker, expected in local.groupby("ticker"):
        written = pd.read_parquet(series_file(out, "ticker", ticker))
        pd.testing.assert_frame_equal(
            written, expected.drop(columns="ticker").reset_index(drop=True), check_exact=True, obj=ticker
        )
    both = pd.read_parquet(out)  # the folder reads back as one table, the id from the partition names
    assert len(both) == 16 * 8 and sorted(both["ticker"].astype(str).unique()) == sorted(
        local["ticker"].unique()
    )


def test_evaluate_command_on_ray_gives_the_local_numbers(cluster, tmp_path, capsys):
    folder = tmp_path / "bars"
    folder.mkdir()
    for ticker, one in universe(2, 150, seed=2).groupby("ticker"):
        one.drop(columns="ticker").to_csv(folder / f"{ticker}.csv", index=False)
    args = ["evaluate", str(folder), "--steps", "4", "--origins", "5", "--paths", "4", "--seed", "5"]
    args += ["--no-plots", "--quiet", "--bootstrap", "50"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--engine", "ray", "--batch-size", "3", "--out", str(tmp_path / "ray")]) == 0
    for name in ("records.csv", "volatility.csv", "summary.csv"):
        local, on_ray = (pd.read_csv(tmp_path / where / name) for where in ("local", "ray"))
        pd.testing.assert_frame_equal(on_ray, local, check_exact=True, obj=name)
    records = pd.read_csv(tmp_path / "ray" / "records.csv")
    assert set(records["series"]) == {"T00", "T01"} and records["method"].nunique() == 6
    assert (
        len(records[(records["method"] == "kronos")]) == 2 * 5 * 4 * 5
    )  # series x origins x steps x columns


def test_cross_section_on_ray_gives_the_local_numbers(cluster, tmp_path, capsys):
    path = tmp_path / "universe.csv"
    universe(5, 135, seed=3).to_csv(path, index=False)
    args = [
        "evaluate",
        str(path),
        "--id-column",
        "ticker",
        "--cross-section",
        "--horizon",
        "3",
        "--rebalance",
        "4",
    ]
    args += ["--top-k", "2", "--paths", "2", "--seed", "7", "--no-plots", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--engine", "ray", "--batch-size", "4", "--out", str(tmp_path / "ray")]) == 0
    for name in ("cross_section.csv", "cross_section_dates.csv", "cross_section_signals.csv"):
        local, on_ray = (pd.read_csv(tmp_path / where / name) for where in ("local", "ray"))
        pd.testing.assert_frame_equal(on_ray, local, check_exact=True, obj=name)
    signals = pd.read_csv(tmp_path / "ray" / "cross_section_signals.csv")
    assert len(signals) == 5 * 6 and signals["kronos"].notna().all()  # 5 series x 6 dates after 108 bars


def test_errors_in_the_actors_come_back_as_one_line_naming_the_series(cluster, tmp_path, capsys):
    path = tmp_path / "universe.csv"
    irregular_universe().to_csv(path, index=False)
    args = ["forecast", str(path), "--id-column", "ticker", "--steps", "3", "--paths", "2", "--engine", "ray"]
    assert main([*args, "--out", str(tmp_path / "f.csv")]) == 2
    last = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert last == (
        "kronos forecast: error: symbol='T01': irregular timestamp 2024-01-04 00:00:00: not a whole number "
        "of 1 days 01:00:00 steps after 2024-01-01 00:00:00; pass freq= to override"
    )
    assert not (tmp_path / "f.csv").exists()


def test_a_failed_run_leaves_no_folder_half_written(cluster, tmp_path):
    out = tmp_path / "forecasts"
    with pytest.raises(ValueError, match="ticker='T01': irregular timestamp"):
        forecast_dataset(
            irregular_universe(),
            id_column="ticker",
            steps=3,
            sampling=Sampling(sample_count=2, seed=0),
            batch_size=1,
            out=out,
        )
    assert list(tmp_path.iterdir()) == [out] and not any(out.iterdir())


def test_rows_of_a_dataset_are_sorted_by_time_and_named_by_id_and_timestamp():
    table = universe(1, 30).sample(frac=1, random_state=0)
    table.loc[table.index[4], "close"] = np.inf
    packed = _named_rows(_unnested(_by_time(table, "timestamps")), "ticker", "timestamps")
    assert packed["timestamps"].is_monotonic_increasing and len(packed) == 30
    with pytest.raises(
        ValueError, match=r"infinite values \(1 in all\), first at row \('T00', Timestamp\('2024-02-06"
    ):
        KronosPredictor.from_pretrained(device="cpu").predict_df(packed, "ticker", prediction_length=2)


def test_a_bad_table_is_refused_before_any_actor_starts_as_predict_df_refuses_it(cluster, tmp_path):
    table = universe(3, 40)
    table.loc[table.index[45], "close"] = np.nan
    with pytest.raises(ValueError) as local:
        KronosPredictor.from_pretrained(device="cpu").predict_df(table, "ticker", prediction_length=3)
    with pytest.raises(ValueError) as on_ray:
        forecast_dataset(table, id_column="ticker", steps=3)
    assert str(on_ray.value) == str(local.value)
    assert "first at ticker='T01', timestamps=2024-01-08" in str(local.value)
    with pytest.raises(TypeError, match="engine must be a RayEngine, e.g. RayEngine"):
        forecast_dataset(table, "kronos-small", id_column="ticker", steps=3)  # a model is not an engine
    with pytest.raises(FileExistsError, match="not an empty folder"):
        (tmp_path / "old").mkdir()
        (tmp_path / "old" / "x").touch()
        forecast_dataset(universe(1, 40), id_column="ticker", steps=3, out=tmp_path / "old")


def test_engine_options_are_checked_before_any_work(capsys, tmp_path):
    path = tmp_path / "u.csv"
    universe(2, 30).to_csv(path, index=False)
    for extra, message in (
        (["--address", "auto"], "--address needs --engine ray"),
        (["--engine", "ray", "--actors", "0"], "--actors must be a positive number"),
        (["--engine", "ray", "--device", "cpu"], "--device applies to --engine local"),
    ):
        assert main(["forecast", str(path), "--id-column", "ticker", "--steps", "2", *extra]) == 2
        assert message in capsys.readouterr().err
    assert series_file("out", "ticker", "BRK/B") == Path("out", "ticker=BRK%2FB", "forecast.parquet")
