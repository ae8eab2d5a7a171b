"""Loading from the Hugging Face cache offline, and clear errors for broken checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kronos import Kronos, KronosTokenizer, load_pretrained

REPOS = {"NeoQuasar/Kronos-small": "model", "NeoQuasar/Kronos-Tokenizer-base": "tokenizer"}
COMMIT = "0" * 40


def make_offline_cache(hf_home: Path, tiny_dir: Path) -> None:
    """Lay out HF_HOME/hub as huggingface_hub does: models--owner--name/{refs/main, snapshots/<commit>/...}."""
    for repo_id, sub in REPOS.items():
        repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo_dir / "snapshots" / COMMIT
        snapshot.mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copy(tiny_dir / sub / name, snapshot / name)
        (repo_dir / "refs").mkdir()
        (repo_dir / "refs" / "main").write_text(COMMIT)


def run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


LOAD_BOTH = """
from kronos import Kronos, KronosTokenizer
m = Kronos.from_pretrained("NeoQuasar/Kronos-small")
t = KronosTokenizer.from_pretrained("NeoQuasar/Kronos-Tokenizer-base")
print(m.d_model, t.d_model, float(m.head.proj_s1.bias.sum()))
"""


def test_hub_ids_resolve_from_offline_cache(tmp_path, tiny_dir, tiny_model):
    make_offline_cache(tmp_path, tiny_dir)
    result = run_offline(LOAD_BOTH, tmp_path)
    assert result.returncode == 0, result.stderr
    d_model, tok_d_model, bias_sum = result.stdout.split()[-3:]
    assert (int(d_model), int(tok_d_model)) == (32, 32)
    assert float(bias_sum) == pytest.approx(tiny_model.head.proj_s1.bias.sum().item(), rel=1e-6)


def test_missing_hub_model_offline_names_it(tmp_path):
    result = run_offline(LOAD_BOTH, tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("FileNotFoundError")
    assert "NeoQuasar/Kronos-small" in last
    assert "from_pretrained('/path/to/dir')" in last and "--model DIR on the command line" in last
    assert "HF_HUB_OFFLINE is set" in last


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_directory_without_config(tmp_path, tiny_dir):
    ckpt = copy_checkpoint(tiny_dir / "model", tmp_path / "m")
    (ckpt / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        Kronos.from_pretrained(ckpt)


def test_directory_without_weights(tmp_path, tiny_dir):
    ckpt = copy_checkpoint(tiny_dir / "tokenizer", tmp_path / "t")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        KronosTokenizer.from_pretrained(ckpt)


def test_weights_that_do_not_fit_config(tmp_path, tiny_dir):
    ckpt = copy_checkpoint(tiny_dir / "model", tmp_path / "m")
    config = json.loads((ckpt / "config.json").read_text())
    config["d_model"] = 64
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit"):
        Kronos.from_pretrained(ckpt)


def test_config_with_unknown_argument(tmp_path, tiny_dir):
    ckpt = copy_checkpoint(tiny_dir / "model", tmp_path / "m")
    config = json.loads((ckpt / "config.json").read_text())
    del config["n_layers"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json"):
        Kronos.from_pretrained(ckpt)


def test_corrupt_weights_file(tmp_path, tiny_dir):
    ckpt = copy_checkpoint(tiny_dir / "model", tmp_path / "m")
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="model.safetensors"):
        Kronos.from_pretrained(ckpt)


def test_not_a_directory_nor_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a checkpoint directory"):
        Kronos.from_pretrained(str(tmp_path / "missing" / "dir"))


def test_save_pretrained_round_trip(tmp_path, tiny_model, tiny_dir):
    tiny_model.save_pretrained(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == json.loads(
        (tiny_dir / "model" / "config.json").read_text()
    )
    reloaded = Kronos.from_pretrained(tmp_path / "out")
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


@pytest.mark.parametrize("cls", [Kronos, KronosTokenizer])
def test_names_and_directories_of_both_parts_are_for_load_pretrained(tmp_path, tiny_dir, cls):
    """from_pretrained reads one checkpoint; a shipped model's name or a directory holding model/
    and tokenizer/ gets an error naming the function that loads it, which does."""
    with pytest.raises(FileNotFoundError, match="neither a checkpoint directory") as info:
        cls.from_pretrained("kronos-default")
    assert r"kronos.load_pretrained(name) or KronosPredictor.from_pretrained(name)" in str(info.value)
    both = copy_checkpoint(tiny_dir, tmp_path / "both")
    with pytest.raises(FileNotFoundError, match="has no config.json") as info:
        cls.from_pretrained(both)
    assert "kronos.load_pretrained(name)" in str(info.value)
    loaded = load_pretrained(str(both))[0 if cls is Kronos else 1]
    alone = cls.from_pretrained(both / ("model" if cls is Kronos else "tokenizer"))
    assert isinstance(loaded, cls) and loaded.config == alone.config
    for name, tensor in alone.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
