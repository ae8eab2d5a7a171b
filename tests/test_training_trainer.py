"""kronos.training.trainer: both stages lower the loss, fine-tuning, resume, early stopping, DDP with
gloo, the model's metadata, selection of the best checkpoint by forecast metrics; and faults: kill -9 and resume, corrupt checkpoints, an interrupted
swap of best/, torn metrics, divergence, and no code path that unpickles anything."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_MODEL, TINY_TOKENIZER, make_bars, make_offline_cache, tiny_config
from safetensors.torch import load_file, save_file

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate
from kronos.evaluation.selection import ForecastScorer
from kronos.training import load_windows, train
from kronos.training.config import config_from_dict
from kronos.training.dataset import split_point
from kronos.training.trainer import CheckpointWarning, Selection, read_metrics

torch.set_num_threads(1)


def first_and_last_train_loss(out_dir: Path) -> tuple[float, float]:
    records = [r for r in read_metrics(out_dir / "metrics.jsonl") if r["split"] == "train"]
    return records[0]["loss"], records[-1]["loss"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, config_dict: dict, out: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    result = train(config_from_dict(config_dict), "tokenizer")
    torch.save({"state": result.module.state_dict(), "history": result.history}, Path(out) / f"rank{rank}.pt")


EPOCHS = 3


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("bars")
    paths = [folder / f"sym{i}.csv" for i in range(2)]
    for i, path in enumerate(paths):
        make_bars(300, seed=i).to_csv(path, index=False)
    return paths


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_files):
    """An uninterrupted run: what every interrupted and resumed run must reproduce exactly."""
    return train(tiny_config(tmp_path_factory.mktemp("straight"), data_files, epochs=EPOCHS), "tokenizer")


def copy_of(straight, tmp_path: Path) -> Path:
    out = tmp_path / "run" / "tokenizer"
    shutil.copytree(straight.out_dir, out)
    return out


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def assert_same_run(result, straight) -> None:
    assert result.step == straight.step
    assert without_seconds(result.history) == without_seconds(straight.history)
    for name, value in straight.module.state_dict().items():
        assert torch.equal(result.module.state_dict()[name], value), name


KILLED_RUN = """
import json, sys
import torch
from kronos.training import train
from kronos.training.config import config_from_dict
torch.set_num_threads(1)
train(config_from_dict(json.loads(sys.argv[1])), "tokenizer")
"""


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def nan_weight(path: Path) -> None:
    weights = load_file(path)
    weights["embed.weight"][0, 0] = float("nan")
    save_file(weights, path)


CORRUPTIONS = {
    "weights-truncated": ("model.safetensors", truncate),
    "weights-nan": ("model.safetensors", nan_weight),
    "optimizer-garbled": ("optimizer.safetensors", lambda p: p.write_bytes(b"\x07" * 300)),
    "state-torn": ("trainer_state.json", truncate),
    "state-wrong-type": (
        "trainer_state.json",
        lambda p: p.write_text(p.read_text().replace('"step": ', '"step": "x", "_": ', 1)),
    ),
}


class Payload:
    """Unpickled, this creates the file `marker`: a stand-in for any code an attacker wants run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns="close"), r"missing price column\(s\) \['close'\]"),
        (
            lambda df: df.assign(close=df["close"].where(df.index != 7)),
            r"column 'close' has NaN values .*line 9",  # the file's line: the header is line 1
        ),
        (
            lambda df: df.assign(high=df["high"].astype(object).where(df.index != 5, "12.5x")),
            r"'high' must be numeric.*'12.5x'",
        ),
        (lambda df: df.iloc[:30], r"too short: 30 bars"),
        (lambda df: df.drop(columns="timestamps"), r"no timestamp column"),
        (
            lambda df: df.assign(timestamps=df["timestamps"].where(df.index != 3, df["timestamps"][2])),
            r"occurs more than once",
        ),
    ],
    ids=["missing-column", "nan", "non-numeric", "too-short", "no-timestamps", "duplicate-time"],
)
def test_bad_files_stop_training_before_any_checkpoint(tmp_path, mutate, message):
    good = tmp_path / "good.csv"
    make_bars(300, 0).to_csv(good, index=False)
    bad = tmp_path / "bad.csv"
    mutate(make_bars(300, 1)).to_csv(bad, index=False)
    cfg = tiny_config(tmp_path, [good, bad])
    with pytest.raises(ValueError, match=message) as info:
        train(cfg, "tokenizer")
    assert "bad" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_tokenizer_then_predictor_training_lowers_the_loss(tmp_path, csv_files):
    cfg = tiny_config(tmp_path, csv_files)
    tok = train(cfg, "tokenizer")
    first, last = first_and_last_train_loss(tok.out_dir)
    assert last < 0.7 * first
    assert tok.history[-1]["val_loss"] < tok.history[0]["val_loss"]
    loaded = KronosTokenizer.from_pretrained(tok.best_dir)
    assert loaded.s1_bits == 4 and (tok.out_dir / "loss.png").stat().st_size > 10_000
    assert sorted(p.name for p in (tok.out_dir / "checkpoints").iterdir()) == [
        "epoch-0001",
        "epoch-0002",
        "epoch-0003",
    ]

    pred = train(cfg, "predictor")  # finds the tokenizer stage's best checkpoint in the same out_dir
    first, last = first_and_last_train_loss(pred.out_dir)
    assert first > np.log(16) * 0.9  # starts near the uniform cross-entropy over 16 tokens
    assert last < first - 0.3
    assert pred.history[-1]["val_loss"] < pred.history[0]["val_loss"]
    model = Kronos.from_pretrained(pred.out_dir / "checkpoints" / "epoch-0003")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, pred.module.state_dict()[name])
    # config.json holds the constructor's arguments, as upstream writes them
    assert json.loads((tok.best_dir / "config.json").read_text()) == {
        **TINY_TOKENIZER, "d_in": 6, "ffn_dropout_p": 0.0, "attn_dropout_p": 0.0, "resid_dropout_p": 0.0,
        "beta": 0.05, "gamma0": 1.0, "gamma": 1.1, "zeta": 0.05, "group_size": 4,
    }  # fmt: skip
    assert json.loads((pred.best_dir / "config.json").read_text()) == {
        **TINY_MODEL, "s1_bits": 4, "s2_bits": 4, "attn_dropout_p": 0.0, "token_dropout_p": 0.0, "learn_te": True,
    }  # fmt: skip


def test_fine_tuning_a_pretrained_model_lowers_its_validation_loss(tmp_path, tiny_dir):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"m{i}.csv")
        make_bars(400, seed=10 + i, freq="5min").to_csv(paths[-1], index=False)
    cfg = tiny_config(tmp_path, paths, epochs=2, lr=1e-3)
    cfg.model.pretrained = str(tiny_dir)  # a directory holding model/ and tokenizer/
    cfg.model.tokenizer = str(tiny_dir)
    pretrained = Kronos.from_pretrained(tiny_dir / "model")
    result = train(cfg, "predictor")
    assert result.module.d_model == 32 and result.module.s1_bits == 4
    changed = [
        k for k, v in pretrained.state_dict().items() if not torch.equal(v, result.module.state_dict()[k])
    ]
    assert changed  # the pretrained weights were the starting point and were trained
    from kronos.training.evaluation import window_losses

    _, _, val_set = load_windows(cfg)
    rows = np.arange(len(val_set))
    tokenizer = KronosTokenizer.from_pretrained(tiny_dir / "tokenizer")
    before = window_losses(tokenizer, pretrained, val_set, rows)["token_ce"]
    assert result.best_val_loss == pytest.approx(
        window_losses(tokenizer, Kronos.from_pretrained(result.best_dir), val_set, rows)["token_ce"], rel=1e-4
    )
    assert result.best_val_loss < before - 0.05
    # the loss before the first step is the pretrained model's, measured by the run itself
    assert result.initial_val_loss == pytest.approx(before, rel=1e-4)
    metadata = json.loads((result.best_dir / "kronos.json").read_text())
    assert Path(result.best_dir, metadata["tokenizer"]).resolve() == (tiny_dir / "tokenizer").resolve()
    assert metadata["sampling"] == {"temperature": 1.0, "top_p": 0.9}  # the config's [sampling] defaults
    assert metadata["anchor"] is True  # the config's [forecast] default
    assert "center" not in metadata  # off unless the config's [forecast] says so


def test_resume_continues_from_the_saved_step(tmp_path, csv_files):
    straight = train(tiny_config(tmp_path, csv_files, epochs=3), "tokenizer")
    steps_per_epoch = straight.step // 3
    # Simulate a run interrupted during epoch 3: drop its last checkpoint and its last logged lines.
    shutil.rmtree(straight.out_dir / "checkpoints" / "epoch-0003")
    metrics = straight.out_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-2]) + "\n")
    resumed = train(tiny_config(tmp_path, csv_files, epochs=3), "tokenizer", resume="auto")
    assert resumed.step == 3 * steps_per_epoch and resumed.epochs_done == 3
    records = read_metrics(metrics)
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    assert min(s for s in steps if s > 2 * steps_per_epoch) > 2 * steps_per_epoch
    assert [r["epoch"] for r in records if r["split"] == "val"] == [0, 1, 2, 3]  # 0: before training, kept
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in straight.history]
    )
    for name, value in straight.module.state_dict().items():
        torch.testing.assert_close(resumed.module.state_dict()[name], value)


def test_fresh_run_into_used_directory_is_refused(tmp_path, csv_files):
    train(tiny_config(tmp_path, csv_files, epochs=1), "tokenizer")
    with pytest.raises(FileExistsError, match="--resume auto"):
        train(tiny_config(tmp_path, csv_files, epochs=1), "tokenizer")


def test_early_stopping_on_validation_loss(tmp_path, csv_files):
    cfg = tiny_config(tmp_path, csv_files, epochs=6, lr=0.0, patience=2, warmup_fraction=0.0)
    result = train(cfg, "tokenizer")
    assert result.stopped_early and result.epochs_done == 3
    # resumed, a stopped run stays stopped: no epoch more, none counted twice
    again = train(cfg, "tokenizer", resume="auto")
    assert again.stopped_early and (again.epochs_done, again.step) == (3, result.step)
    assert again.history == result.history


def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path, csv_files):
    cfg = tiny_config(tmp_path, csv_files, epochs=2, batch_size=8)
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, _free_port(), cfg.to_dict(), str(tmp_path)), nprocs=2, join=True
    )
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name, value in rank0["state"].items():
        torch.testing.assert_close(rank1["state"][name], value, rtol=0, atol=0)

    def losses(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert losses(rank0["history"]) == losses(rank1["history"])  # losses are reduced over both ranks
    first, last = first_and_last_train_loss(tmp_path / "run" / "tokenizer")
    assert last < 0.7 * first
    # Two ranks of 8 windows take the same steps as one process with batches of 16.
    single = train(tiny_config(tmp_path / "single", csv_files, epochs=2, batch_size=16), "tokenizer")
    for name, value in single.module.state_dict().items():
        torch.testing.assert_close(rank0["state"][name], value, rtol=1e-3, atol=1e-3)
    assert [h["val_loss"] for h in rank0["history"]] == pytest.approx(
        [h["val_loss"] for h in single.history], rel=1e-4
    )
    assert json.loads((tmp_path / "run" / "tokenizer" / "best" / "config.json").read_text())["d_model"] == 16


def test_metadata_round_trip_through_training_saving_and_loading(tmp_path):
    paths = []
    for i, freq in enumerate(("h", "D")):
        paths.append(tmp_path / f"s{i}.csv")
        make_bars(300, seed=i, freq=freq).to_csv(paths[-1], index=False)
    config = tiny_config(tmp_path, paths, epochs=1)
    train(config, "tokenizer")
    result = train(config, "predictor")
    saved = json.loads((result.best_dir / "kronos.json").read_text())
    assert saved["max_context"] == 24 and saved["history"] == 20
    assert saved["frequencies"] == ["D", "h"] and saved["series"] == 2
    tokenizer_dir = tmp_path / "run" / "tokenizer" / "best"
    predictor = KronosPredictor.from_pretrained(str(result.best_dir), str(tokenizer_dir), device="cpu")
    assert predictor.max_context == 24 and predictor.lookback == 20
    # and the defaults of evaluate follow: the lookback is the history the model was trained with
    data = make_bars(120, seed=5).set_index("timestamps").reset_index()
    outcome = evaluate(
        data,
        predictor,
        Backtest(steps=3, origins=2, sampling=Sampling(sample_count=2, seed=0)),
        progress=False,
    )
    assert outcome.settings["lookback"] == 20 and outcome.settings["notes"] == []
    # saving the loaded model keeps the metadata
    predictor.model.save_pretrained(tmp_path / "copy")
    assert Kronos.from_pretrained(tmp_path / "copy").metadata == predictor.metadata


def test_kill_9_after_the_first_checkpoint_then_resume_is_bit_identical(tmp_path, data_files, straight):
    config = tiny_config(tmp_path, data_files, epochs=EPOCHS)
    out = Path(config.train_for("tokenizer").out_dir)
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config.to_dict())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "epoch-0001").is_dir():
        assert run.poll() is None, run.stderr.read().decode() if run.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    assert not (out / "checkpoints" / f"epoch-{EPOCHS:04d}").exists()  # killed before the end
    resumed = train(config, "tokenizer", resume="auto")
    assert_same_run(resumed, straight)
    assert without_seconds(read_metrics(out / "metrics.jsonl")) == without_seconds(
        read_metrics(straight.out_dir / "metrics.jsonl")
    )


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_latest_checkpoint_falls_back_to_the_one_before(tmp_path, data_files, straight, corruption):
    out = copy_of(straight, tmp_path)
    name, corrupt = CORRUPTIONS[corruption]
    corrupt(out / "checkpoints" / "epoch-0003" / name)
    with pytest.warns(CheckpointWarning, match=f"cannot resume from .*epoch-0003.*{name}") as caught:
        resumed = train(tiny_config(tmp_path, data_files, epochs=EPOCHS), "tokenizer", resume="auto")
    assert len([w for w in caught if issubclass(w.category, CheckpointWarning)]) == 1
    assert_same_run(resumed, straight)  # epoch 3 was trained again from epoch 2's checkpoint
    assert KronosTokenizer.from_pretrained(out / "checkpoints" / "epoch-0003").d_model == 16


def test_no_readable_checkpoint_is_one_clear_error(tmp_path, data_files, straight):
    out = copy_of(straight, tmp_path)
    for checkpoint in (out / "checkpoints").iterdir():
        truncate(checkpoint / "trainer_state.json")
    config = tiny_config(tmp_path, data_files, epochs=EPOCHS)
    with (
        pytest.raises(ValueError, match="no checkpoint in .* can be resumed"),
        pytest.warns(CheckpointWarning),
    ):
        train(config, "tokenizer", resume="auto")
    named = out / "checkpoints" / "epoch-0002"
    with pytest.raises(ValueError, match="epoch-0002/trainer_state.json is unreadable"):
        train(config, "tokenizer", resume=str(named))  # a checkpoint named explicitly: no fallback


def test_best_survives_a_crash_between_the_two_renames_of_its_swap(tmp_path, data_files, straight):
    out = copy_of(straight, tmp_path)
    best_weights = load_file(out / "best" / "model.safetensors")
    (out / "best").rename(out / ".best.old")  # the crash came after the first rename
    shutil.copytree(out / ".best.old", out / ".best.tmp")  # the complete new version
    config = tiny_config(tmp_path, data_files, epochs=EPOCHS)
    with pytest.warns(CheckpointWarning, match="restored .*best from .best.tmp"):
        result = train(config, "tokenizer", resume="auto")
    assert result.best_dir == out / "best"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    restored = load_file(out / "best" / "model.safetensors")
    assert all(torch.equal(restored[k], v) for k, v in best_weights.items())
    shutil.rmtree(out / "best")
    assert train(config, "tokenizer", resume="auto").best_dir is None  # never reports a missing best/


def test_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, data_files, straight):
    """A run killed in epoch 3 while appending to metrics.jsonl."""
    out = copy_of(straight, tmp_path)
    shutil.rmtree(out / "checkpoints" / "epoch-0003")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join(lines[:-2]) + "\n" + lines[-2][: len(lines[-2]) // 2])
    with pytest.warns(
        CheckpointWarning, match=rf"metrics.jsonl: dropped unreadable line\(s\) \[{len(lines) - 1}\]"
    ):
        resumed = train(tiny_config(tmp_path, data_files, epochs=EPOCHS), "tokenizer", resume="auto")
    assert_same_run(resumed, straight)
    assert without_seconds(read_metrics(out / "metrics.jsonl")) == without_seconds(
        read_metrics(straight.out_dir / "metrics.jsonl")
    )


def test_divergence_stops_training_before_a_non_finite_checkpoint(tmp_path, data_files):
    config = tiny_config(tmp_path, data_files, epochs=2, lr=1e12, grad_clip=0.0)
    with pytest.raises(ValueError, match="training diverged in epoch 1 .*train loss nan.*lower train.lr"):
        train(config, "tokenizer")
    assert not (Path(config.train_for("tokenizer").out_dir) / "checkpoints" / "epoch-0001").exists()


def test_no_code_path_unpickles(tmp_path, data_files, straight, tiny_dir, monkeypatch):
    marker = tmp_path / "code-ran"
    torch.save({"step": Payload(marker)}, tmp_path / "armed.pt")
    torch.load(tmp_path / "armed.pt", weights_only=False)["step"].close()  # the payload is live
    assert marker.exists()
    marker.unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)

    # resume, and every way of loading a checkpoint, with pickle and torch.load unusable
    out = copy_of(straight, tmp_path)
    shutil.rmtree(out / "checkpoints" / "epoch-0003")
    config = tiny_config(tmp_path, data_files, epochs=EPOCHS)
    assert_same_run(train(config, "tokenizer", resume="auto"), straight)
    assert KronosTokenizer.from_pretrained(out / "best").d_model == 16
    assert KronosPredictor.from_pretrained("kronos-default").lookback > 0
    make_offline_cache(tmp_path / "hf", tiny_dir)
    hub = tmp_path / "hf" / "hub"
    assert (
        Kronos.from_pretrained("NeoQuasar/Kronos-small", cache_dir=hub, local_files_only=True).d_model == 32
    )

    # hostile pickles where a trainer state or weights would be: refused, never run
    legacy = tmp_path / "legacy" / "run" / "tokenizer" / "checkpoints" / "epoch-0002"
    shutil.copytree(out / "checkpoints" / "epoch-0002", legacy)
    (legacy / "trainer_state.json").unlink()
    shutil.copy(tmp_path / "armed.pt", legacy / "trainer_state.pt")
    legacy_config = tiny_config(tmp_path / "legacy", data_files, epochs=EPOCHS)
    for resume in (str(legacy), "auto"):
        with pytest.raises(ValueError, match="trainer_state.pt, a pickle file .* never loaded"):
            train(legacy_config, "tokenizer", resume=resume)
    model = Path(shutil.copytree(tiny_dir / "model", tmp_path / "model"))
    (model / "model.safetensors").unlink()
    shutil.copy(tmp_path / "armed.pt", model / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="never pickle files"):
        Kronos.from_pretrained(model)
    snapshot = next((hub / "models--NeoQuasar--Kronos-small" / "snapshots").iterdir())
    (snapshot / "model.safetensors").unlink()
    shutil.copy(tmp_path / "armed.pt", snapshot / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="has pytorch_model.bin but no model.safetensors"):
        Kronos.from_pretrained("NeoQuasar/Kronos-small", cache_dir=hub, local_files_only=True)
    assert not marker.exists()


def predictor_config(tmp_path: Path, paths: list[Path], tiny_dir: Path, epochs: int):
    """The tiny compat model fine-tuned with its own tokenizer: a predictor stage in seconds."""
    config = tiny_config(tmp_path, paths, epochs=epochs, lr=1e-3)
    config.model.pretrained = str(tiny_dir)
    config.model.tokenizer = str(tiny_dir)
    return config


def distance_from(start: dict[str, torch.Tensor]):
    """A real, deterministic scorer: how far the predictor's weights moved from `start` (squared
    L2), so it ranks the first epoch best while the validation loss keeps falling."""

    def score(predictor: KronosPredictor) -> dict[str, float]:
        weights = predictor.model.state_dict()
        return {"distance": float(sum(((weights[k] - v) ** 2).sum() for k, v in start.items()))}

    return score


def test_selection_keeps_the_checkpoint_its_scorer_ranks_best_not_the_lowest_loss(
    tmp_path, csv_files, tiny_dir
):
    start = Kronos.from_pretrained(tiny_dir / "model").state_dict()
    selection = Selection(distance_from(start), "distance")
    result = train(
        predictor_config(tmp_path, csv_files, tiny_dir, epochs=3), "predictor", selection=selection
    )
    distances = [record["forecast"]["distance"] for record in result.history]
    losses = [record["val_loss"] for record in result.history]
    assert distances == sorted(distances) and distances[0] > 0  # the weights move away epoch after epoch
    assert int(np.argmin(losses)) != 0  # the validation loss would have kept another epoch
    assert [record["best"] for record in result.history] == [True, False, False]
    assert (result.selected_by, result.best_score) == ("distance", distances[0])
    assert result.best_val_loss == losses[0]  # the loss of the epoch kept, not the lowest one
    kept = Kronos.from_pretrained(result.best_dir).state_dict()
    first = Kronos.from_pretrained(result.out_dir / "checkpoints" / "epoch-0001").state_dict()
    assert all(torch.equal(kept[k], first[k]) for k in first)
    logged = [
        r for r in read_metrics(result.out_dir / "metrics.jsonl") if r["split"] == "val" and r["step"] > 0
    ]
    assert [r["forecast"]["distance"] for r in logged] == distances


def test_forecast_selection_survives_resume(tmp_path, csv_files, tiny_dir):
    config = predictor_config(tmp_path / "straight", csv_files, tiny_dir, epochs=3)
    series, _, _ = load_windows(config)
    held_out = [split_point(len(one), config.data.val_fraction) for one in series]
    scorer = ForecastScorer(series, held_out, steps=4, lookback=20, origins=6, paths=8)
    calls = []

    def score(predictor):
        calls.append(1)
        return scorer(predictor)

    straight = train(config, "predictor", selection=Selection(score, "crps_ratio"))
    ratios = [record["forecast"]["crps_ratio"] for record in straight.history]
    assert straight.best_score == min(ratios) and len(calls) == 3
    assert {"hourly/crps_ratio", "hourly/cover_80", "hourly/brier", "hourly/qlike"} <= set(
        straight.history[0]["forecast"]
    )
    # interrupted in epoch 3: its checkpoint and its metrics are gone; resumed, epochs 1 and 2 are not scored again
    shutil.rmtree(straight.out_dir / "checkpoints" / "epoch-0003")
    metrics = straight.out_dir / "metrics.jsonl"
    metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines()[:-2]))
    resumed = train(config, "predictor", resume="auto", selection=Selection(score, "crps_ratio"))
    assert len(calls) == 4
    assert without_seconds(resumed.history) == without_seconds(straight.history)
    assert (resumed.best_score, resumed.best_val_loss) == (straight.best_score, straight.best_val_loss)
    best_epoch = int(np.argmin(ratios)) + 1
    kept = Kronos.from_pretrained(resumed.best_dir).state_dict()
    chosen = Kronos.from_pretrained(resumed.out_dir / "checkpoints" / f"epoch-{best_epoch:04d}").state_dict()
    assert all(torch.equal(kept[k], chosen[k]) for k in chosen)
    # another criterion cannot continue the run: its best and patience were counted by this one
    with pytest.raises(ValueError, match="selecting by 'brier'.*by 'crps_ratio'"):
        train(config, "predictor", resume="auto", selection=Selection(score, "brier"))
    with pytest.raises(ValueError, match="selecting by 'val_loss'.*by 'crps_ratio'"):
        train(config, "predictor", resume="auto")


def test_selection_is_refused_where_it_cannot_decide(tmp_path, csv_files, tiny_dir):
    selection = Selection(lambda predictor: {"other": 1.0}, "crps_ratio")
    with pytest.raises(ValueError, match="cannot choose 'tokenizer' checkpoints"):
        train(tiny_config(tmp_path, csv_files), "tokenizer", selection=selection)
    config = predictor_config(tmp_path, csv_files, tiny_dir, epochs=1)
    with pytest.raises(
        ValueError, match=r"metric 'crps_ratio' is not among the scorer's metrics \['other'\]"
    ):
        train(config, "predictor", selection=selection)


@pytest.mark.parametrize(
    ("device", "local_rank", "expected"),
    [("cuda", "0", "cuda:0"), ("cuda", "1", "cuda:1"), ("cuda:0", "1", "cuda:0"), ("auto", "1", "cuda:1")],
)
def test_a_plain_cuda_device_becomes_the_process_s_own_gpu(monkeypatch, device, local_rank, expected):
    """`train.device = "cuda"` names no GPU, and torch.cuda.set_device refuses that (found on a lent
    H200: every `kronos train --set train.device=cuda` stopped so). One process takes the first GPU,
    each process under torchrun its LOCAL_RANK's; a GPU named by index stays as named."""
    from kronos.training.trainer import Distributed

    chosen: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist = Distributed.from_env(device)
    assert str(dist.device) == expected and [str(d) for d in chosen] == [expected]
