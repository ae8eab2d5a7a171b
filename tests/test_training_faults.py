"""Training faults: kill -9 and resume, corrupt checkpoints, an interrupted swap of best/, torn
metrics, divergence; and no code path that unpickles anything."""

from __future__ import annotations

import json
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_hub import make_offline_cache
from test_training import make_bars, tiny_config

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.training import train
from kronos.training.trainer import CheckpointWarning, read_metrics

torch.set_num_threads(1)
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


class Payload:
    """Unpickled, this creates the file `marker`: a stand-in for any code an attacker wants run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


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
