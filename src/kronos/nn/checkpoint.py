"""Checkpoint loading with checks before anything is built, and clear errors.

Checkpoints are `config.json` + `model.safetensors`, the upstream format, written by
huggingface_hub's PyTorchModelHubMixin. Loading is our own, so that nothing reaches the network
when the model is cached, nothing is unpickled, and every failure names the file and what to do:
the config is checked (types, ranges, the size of the network it asks for) before a tensor is
allocated, and the weights (names, shapes, dtypes, finiteness) before they are copied in.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import typing
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import (
    PyTorchModelHubMixin,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.utils import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors import SafetensorError, safe_open

from kronos.forecasting.pretrained import resolve_checkpoint

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
MAX_PARAMETERS = 2_000_000_000  # Kronos-base has about 102M; 2e9 float32 weights are 8 GB
MAX_BITS = 30  # token ids are int64 and the full code of s1 + s2 bits indexes one
MAX_CONFIG_BYTES = 1_000_000
HUB_PROBE_SECONDS = 5.0
CONVERT_HINT = (
    'convert it once, in an environment you trust, with: python -c "import torch; from safetensors.torch '
    "import save_file; save_file(torch.load('pytorch_model.bin', weights_only=True), 'model.safetensors')\""
)


def read_config(path: str | Path) -> dict[str, Any]:
    """The JSON object in a checkpoint's config.json; ValueError naming the file otherwise."""
    path = Path(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size:,} bytes, not a checkpoint config")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(
            f"{path} must hold a JSON object of constructor arguments, got {type(config).__name__}"
        )
    return config


def _check_value(key: str, value: Any, expected: Any, source: str) -> None:
    """Type and range of one constructor argument; the ranges follow from the names the classes use."""
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: {key!r} must be true or false, got {value!r:.60}")
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: {key!r} must be an integer, got {value!r:.60}")
        if value < 1:
            raise ValueError(f"{source}: {key!r} must be at least 1, got {value}")
        if key.endswith("_bits") and value > MAX_BITS:
            raise ValueError(f"{source}: {key!r} must be at most {MAX_BITS}, got {value}")
    elif expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{source}: {key!r} must be a finite number, got {value!r:.60}")
        if key.endswith("_p") and not 0 <= value < 1:
            raise ValueError(f"{source}: {key!r} is a dropout probability, in [0, 1), got {value}")


def check_head_size(d_model: int, n_heads: int, heads: str, source: str) -> None:
    """d_model / n_heads must be an even whole number: rotary embeddings turn pairs of a head's coordinates."""
    head_dim, rest = divmod(d_model, n_heads)
    if rest or head_dim % 2:
        raise ValueError(
            f"{source}: 'd_model' ({d_model}) divided by {heads} ({n_heads}) must be an even whole number, "
            f"the size of a head: rotary embeddings turn pairs of its coordinates"
        )


def read_weights(module: torch.nn.Module, path: str | Path, strict: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file for `module.load_state_dict`, each one checked.

    Names (all of them when `strict`), shapes and dtype kinds must match the module's own tensors
    (a float weight stored as int or bool would be cast silently into nonsense), and floating
    weights must be finite. ValueError naming the file and the tensor otherwise.
    """
    expected = module.state_dict()
    try:
        with safe_open(str(path), framework="pt", device="cpu") as weights:
            names = list(weights.keys())
            missing, unexpected = sorted(set(expected) - set(names)), sorted(set(names) - set(expected))
            if strict and (missing or unexpected):
                raise ValueError(
                    f"{path}: the weights do not fit {CONFIG_NAME}: "
                    f"missing {missing[:5]}, unexpected {unexpected[:5]}"
                )
            names = [name for name in names if name in expected]
            for name in names:
                stored = weights.get_slice(name)
                shape, dtype, wanted = tuple(stored.get_shape()), stored.get_dtype(), expected[name]
                if shape != tuple(wanted.shape):
                    raise ValueError(
                        f"{path}: the weights do not fit {CONFIG_NAME}: tensor {name!r} "
                        f"has shape {list(shape)}, the configured network {list(wanted.shape)}"
                    )
                if dtype.startswith(("F", "BF")) != wanted.is_floating_point():
                    raise ValueError(
                        f"{path}: tensor {name!r} is stored as {dtype}, where the network "
                        f"holds {str(wanted.dtype).removeprefix('torch.')}; it is not cast"
                    )
            state = {}
            for name in names:
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    bad = int((~torch.isfinite(tensor)).sum())
                    raise ValueError(
                        f"{path}: tensor {name!r} holds {bad} non-finite values "
                        f"(NaN or infinity); these weights would forecast NaN"
                    )
                state[name] = tensor
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    return state


def _no_safetensors(cls_name: str, where: str, holds_pickle: bool) -> FileNotFoundError:
    found = f"has {PICKLE_WEIGHTS_NAME} but no {WEIGHTS_NAME}" if holds_pickle else f"has no {WEIGHTS_NAME}"
    return FileNotFoundError(
        f"{cls_name} {where!r} {found}: kronos loads only safetensors, never pickle files such as "
        f"{PICKLE_WEIGHTS_NAME} (unpickling can run code); to use one, {CONVERT_HINT}, and load the "
        f"directory holding it"
    )


def _local_files(cls_name: str, directory: str) -> tuple[str, str]:
    config, weights = os.path.join(directory, CONFIG_NAME), os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(config):
        raise FileNotFoundError(
            f"{cls_name} checkpoint directory {directory!r} has no {CONFIG_NAME}; a checkpoint directory "
            f"holds {CONFIG_NAME} and {WEIGHTS_NAME} as written by save_pretrained()"
        )
    if not os.path.isfile(weights):
        raise _no_safetensors(
            cls_name, directory, os.path.isfile(os.path.join(directory, PICKLE_WEIGHTS_NAME))
        )
    return config, weights


def _hub_files(
    cls_name: str,
    flag: str,
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | Path | None,
    token: str | bool | None,
    force_download: bool,
    local_files_only: bool,
) -> tuple[str, str]:
    """config.json and model.safetensors of a Hub model: from the local cache when both are there,
    else from the Hub after one quick probe, so that an unreachable Hub fails in seconds rather
    than after a series of retries."""
    cached = {
        name: try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=revision)
        for name in (CONFIG_NAME, WEIGHTS_NAME, PICKLE_WEIGHTS_NAME)
    }
    config, weights = cached[CONFIG_NAME], cached[WEIGHTS_NAME]
    if isinstance(config, str) and isinstance(weights, str) and not force_download:
        return config, weights
    if local_files_only or constants.HF_HUB_OFFLINE:
        why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE is set"
        reason = f"the Hub was not asked ({why})"
    else:
        try:
            get_hf_file_metadata(
                hf_hub_url(repo_id, CONFIG_NAME, revision=revision), token=token, timeout=HUB_PROBE_SECONDS
            )
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
            raise FileNotFoundError(
                f"{cls_name} {repo_id!r} is not a model on the Hugging Face Hub (or it is private or gated: "
                f"log in with `hf auth login`), or it has no {CONFIG_NAME}: {type(err).__name__}"
            ) from err
        except Exception as err:  # any failure of the one probe means the Hub cannot be used now
            reason = f"the Hub could not be reached ({type(err).__name__})"
        else:

            def download(filename: str) -> str:
                return hf_hub_download(
                    repo_id,
                    filename,
                    revision=revision,
                    cache_dir=cache_dir,
                    token=token,
                    force_download=force_download,
                )

            config = download(CONFIG_NAME)
            try:
                return config, download(WEIGHTS_NAME)
            except EntryNotFoundError as err:
                raise _no_safetensors(cls_name, repo_id, holds_pickle=False) from err
    if isinstance(cached[PICKLE_WEIGHTS_NAME], str) and not isinstance(weights, str):
        raise _no_safetensors(cls_name, repo_id, holds_pickle=True)
    raise FileNotFoundError(
        f"could not load {cls_name} {repo_id!r}: it is not in the local Hugging Face cache "
        f"({cache_dir or constants.HF_HUB_CACHE}) and {reason}. Download it once with network access, or "
        f"use a local directory holding {CONFIG_NAME} and {WEIGHTS_NAME} ({flag} DIR on the command line, "
        f"from_pretrained('/path/to/dir') in Python)."
    )


class KronosHubMixin(PyTorchModelHubMixin):
    """PyTorchModelHubMixin whose `from_pretrained` checks its inputs and loads strictly.

    `checkpoint_part` names the subdirectory ("model" or "tokenizer") a shipped model or a
    directory of both holds this class's checkpoint in. Subclasses give `parameter_count` and may
    add checks of their architecture in `check_architecture`.
    """

    checkpoint_part = "model"

    @staticmethod
    def parameter_count(config: dict[str, Any]) -> int:
        """Parameters of the network a (checked) config describes, computed without building it."""
        raise NotImplementedError

    @classmethod
    def check_architecture(cls, config: dict[str, Any], source: str) -> None:
        """Constraints between constructor arguments; ValueError naming the keys."""
        check_head_size(config["d_model"], config["n_heads"], "'n_heads'", source)

    @classmethod
    def check_config(cls, config: dict[str, Any], source: str) -> dict[str, Any]:
        """The constructor arguments in `config`, checked: every one present, of its type and
        range, fitting together, and the network no larger than MAX_PARAMETERS. Unknown keys are
        ignored, as the mixin does."""
        hints = typing.get_type_hints(cls.__init__)
        parameters = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        missing = [
            p.name for p in parameters if p.name not in config and p.default is inspect.Parameter.empty
        ]
        if missing:
            raise ValueError(f"{source} lacks {missing}; {cls.__name__} needs {[p.name for p in parameters]}")
        arguments = {p.name: config[p.name] for p in parameters if p.name in config}
        for key, value in arguments.items():
            _check_value(key, value, hints.get(key), source)
        cls.check_architecture(arguments, source)
        count = cls.parameter_count(arguments)
        if count > MAX_PARAMETERS:
            raise ValueError(
                f"{source} asks for a network of {count:,} parameters ({count * 4 / 1e9:,.1f} GB in float32); "
                f"more than {MAX_PARAMETERS:,} is refused as a corrupt or hostile config (Kronos-base has about 102M)"
            )
        return arguments

    @classmethod
    def from_pretrained(  # type: ignore[override]  # no constructor overrides: the config is checked first
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        strict: bool = True,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        token: str | bool | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
    ):
        """Load from a local checkpoint directory or a Hugging Face Hub repo id.

        `pretrained_model_name_or_path` may also name a shipped model ('kronos-default') or a
        directory holding `model/` and `tokenizer/`. A Hub id is read from the local cache when it
        is there, else downloaded. Raises FileNotFoundError when the directory, cache or Hub lacks
        a file, and ValueError when the config or the weights fail their checks. `strict=True`
        also rejects missing or extra weights.
        """
        name = resolve_checkpoint(str(pretrained_model_name_or_path), cls.checkpoint_part)
        if os.path.isdir(name):
            config_path, weights_path = _local_files(cls.__name__, name)
        elif os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") != 1:
            raise FileNotFoundError(
                f"{cls.__name__}: {name!r} is neither a checkpoint directory nor a Hugging Face Hub id "
                f"of the form 'owner/name'"
            )
        else:
            config_path, weights_path = _hub_files(
                cls.__name__,
                f"--{cls.checkpoint_part}",
                name,
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                force_download=force_download,
                local_files_only=local_files_only,
            )
        arguments = cls.check_config(read_config(config_path), config_path)
        model = cls(**arguments)
        assert isinstance(model, torch.nn.Module)
        model.load_state_dict(read_weights(model, weights_path, strict), strict=strict)
        return model.eval()
