"""kronos.nn.checkpoint: loading from a directory or the Hugging Face cache (offline, and failing
fast when the Hub is unreachable), saving, and hostile checkpoints: every bad config or weights
file is refused with its name, before anything large is built, and nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_offline_cache
from safetensors.torch import load_file, save_file

from kronos import Kronos, KronosTokenizer, load_pretrained


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


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def checkpoint(tmp_path: Path, tiny_dir: Path, part: str = "model") -> Path:
    return Path(shutil.copytree(tiny_dir / part, tmp_path / part))


def edit_config(ckpt: Path, **changes) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, **changes}))


HUB_SCENARIOS = """
import json, time
from kronos import Kronos, KronosTokenizer
out = {}
started = time.perf_counter()
try:
    Kronos.from_pretrained("NeoQuasar/Kronos-mini")
except FileNotFoundError as err:
    out["unreachable"] = [str(err), time.perf_counter() - started]
out["cached"] = KronosTokenizer.from_pretrained("NeoQuasar/Kronos-Tokenizer-base").d_model
try:
    Kronos.from_pretrained("NeoQuasar/Kronos-small")
except FileNotFoundError as err:
    out["pickle_only"] = str(err)
print(json.dumps(out))
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"d_model": 32,', "is not valid JSON"),
        ("[1, 2, 3]", "must hold a JSON object.*got list"),
        ("null", "must hold a JSON object.*got NoneType"),
        ("[" * 100_000, "is not valid JSON"),
    ],
    ids=["truncated", "list", "null", "deeply-nested"],
)
def test_config_that_is_not_a_json_object_names_the_file(tmp_path, tiny_dir, text, message):
    ckpt = checkpoint(tmp_path, tiny_dir)
    (ckpt / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        Kronos.from_pretrained(ckpt)
    assert str(ckpt / "config.json") in str(info.value)


@pytest.mark.parametrize(
    ("part", "changes", "message"),
    [
        ("model", {"n_layers": -2}, "'n_layers' must be at least 1, got -2"),
        ("model", {"n_heads": 0}, "'n_heads' must be at least 1, got 0"),
        ("model", {"n_layers": 2.5}, "'n_layers' must be an integer, got 2.5"),
        ("model", {"d_model": "32"}, "'d_model' must be an integer, got '32'"),
        ("model", {"n_layers": True}, "'n_layers' must be an integer, got True"),
        ("model", {"learn_te": 1}, "'learn_te' must be true or false, got 1"),
        ("model", {"ffn_dropout_p": 1.5}, "'ffn_dropout_p' is a dropout probability"),
        ("model", {"s1_bits": 64}, "'s1_bits' must be at most 30, got 64"),
        ("model", {"d_model": 36, "n_heads": 5}, r"'d_model' \(36\) divided by 'n_heads' \(5\)"),
        ("model", {"d_model": 12, "n_heads": 4}, r"'d_model' \(12\) divided by 'n_heads' \(4\)"),
        ("model", {"d_model": 36, "n_heads": 2}, "dependency-aware layer's heads"),
        ("model", {"n_layers": 10**6}, "network of [0-9,]+ parameters .*refused"),
        ("model", {"s1_bits": 30, "s2_bits": 30}, "network of [0-9,]+ parameters"),
        ("tokenizer", {"beta": float("nan")}, "'beta' must be a finite number"),
        ("tokenizer", {"group_size": 24, "s1_bits": 12, "s2_bits": 12}, "'group_size' \\(24\\) must divide"),
        ("tokenizer", {"group_size": 3}, "'group_size' \\(3\\) must divide"),
        ("tokenizer", {"s2_bits": 5}, "'s1_bits' \\(4\\) and 's2_bits' \\(5\\) must be equal"),
        ("tokenizer", {"ff_dim": 10**9}, "network of [0-9,]+ parameters"),
    ],
)
def test_bad_config_values_are_refused_naming_the_key(tmp_path, tiny_dir, part, changes, message):
    ckpt = checkpoint(tmp_path, tiny_dir, part)
    edit_config(ckpt, **changes)
    cls = Kronos if part == "model" else KronosTokenizer
    with pytest.raises(ValueError, match=message) as info:
        cls.from_pretrained(ckpt)
    assert "config.json" in str(info.value)


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [(torch.int64, "I64"), (torch.bool, "BOOL"), (torch.int32, "I32")],
)
def test_weights_stored_as_integers_or_booleans_are_not_cast(tmp_path, tiny_dir, dtype, stored):
    ckpt = checkpoint(tmp_path, tiny_dir)
    weights = load_file(ckpt / "model.safetensors")
    weights["head.proj_s1.weight"] = torch.full_like(
        weights["head.proj_s1.weight"], 4e18 if dtype != torch.bool else 1
    ).to(dtype)
    save_file(weights, ckpt / "model.safetensors")
    with pytest.raises(ValueError, match=f"tensor 'head.proj_s1.weight' is stored as {stored}.*not cast"):
        Kronos.from_pretrained(ckpt)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, tiny_dir, value):
    ckpt = checkpoint(tmp_path, tiny_dir, "tokenizer")
    weights = load_file(ckpt / "model.safetensors")
    weights["embed.weight"][1, 2] = value
    save_file(weights, ckpt / "model.safetensors")
    with pytest.raises(ValueError, match="tensor 'embed.weight' holds 1 non-finite values"):
        KronosTokenizer.from_pretrained(ckpt)


def test_weights_of_another_shape_are_refused_before_loading(tmp_path, tiny_dir):
    ckpt = checkpoint(tmp_path, tiny_dir)
    weights = load_file(ckpt / "model.safetensors")
    weights["norm.weight"] = torch.ones(10**6)
    save_file(weights, ckpt / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"tensor 'norm.weight' has shape \[1000000\], the configured network \[32\]"
    ):
        Kronos.from_pretrained(ckpt)


def test_truncated_weights_file_is_refused(tmp_path, tiny_dir):
    ckpt = checkpoint(tmp_path, tiny_dir)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        Kronos.from_pretrained(ckpt)


def test_directory_with_only_a_pickle_is_refused_with_the_conversion(tmp_path, tiny_dir):
    ckpt = checkpoint(tmp_path, tiny_dir)
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    with pytest.raises(
        FileNotFoundError, match="has pytorch_model.bin but no model.safetensors.*never"
    ) as info:
        Kronos.from_pretrained(ckpt)
    assert "save_file(torch.load('pytorch_model.bin', weights_only=True)" in str(info.value)


def test_hub_ids_load_from_the_cache_without_the_hub_and_fail_fast_when_it_is_unreachable(tmp_path, tiny_dir):
    """HF_HUB_OFFLINE is not set and the endpoint is a closed local port: the cached tokenizer
    loads without asking it, the uncached model fails at the first attempt (no retries), and a
    cache holding only pytorch_model.bin is refused."""
    make_offline_cache(tmp_path, tiny_dir)
    snapshot = next((tmp_path / "hub" / "models--NeoQuasar--Kronos-small" / "snapshots").iterdir())
    (snapshot / "model.safetensors").rename(snapshot / "pytorch_model.bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path), HF_ENDPOINT="http://127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-c", HUB_SCENARIOS], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    message, seconds = out["unreachable"]
    assert "'NeoQuasar/Kronos-mini'" in message and "the Hub could not be reached" in message
    assert "--model DIR on the command line" in message and "from_pretrained('/path/to/dir')" in message
    assert seconds < 10  # one attempt: retrying with back-off takes 20 s or more
    assert out["cached"] == 32
    assert "has pytorch_model.bin but no model.safetensors" in out["pickle_only"]
