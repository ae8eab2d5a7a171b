"""Checkpoint files: found in a directory or the Hugging Face Hub, checked before anything is built.

Checkpoints are `config.json` + `model.safetensors`, the upstream format, written by
huggingface_hub's PyTorchModelHubMixin (a predictor may add `kronos.json`, see `kronos.nn.metadata`).
Loading is our own, so that nothing reaches the network when the model is cached, nothing is
unpickled, and every failure names the file and what to do: the config is checked (types, ranges,
the size of the network it asks for) before a tensor is allocated, and the weights (names, shapes,
dtypes, finiteness) before they are copied in. Names of shipped models are not known here: they
are resolved by `kronos.forecasting.pretrained`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from huggingface_hub import (
    PyTorchModelHubMixin,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors import SafetensorError, safe_open

from kronos.nn.config import NetworkConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
MAX_PARAMETERS = 2_000_000_000  # Kronos-base has about 102M; 2e9 float32 weights are 8 GB
MAX_CONFIG_BYTES = 1_000_000
HUB_PROBE_SECONDS = 5.0
CONVERT_HINT = (
    'convert it once, in an environment you trust, with: python -c "import torch; from safetensors.torch '
    "import save_file; save_file(torch.load('pytorch_model.bin', weights_only=True), 'model.safetensors')\""
)
BY_NAME_HINT = (
    "a shipped model's name (such as 'kronos-default') or a directory holding model/ and tokenizer/ "
    "is loaded with kronos.load_pretrained(name) or KronosPredictor.from_pretrained(name)"
)
Config = TypeVar("Config", bound=NetworkConfig)


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint's config.json and model.safetensors, in one directory (a Hub id's: its cached snapshot)."""

    config: Path
    weights: Path

    @property
    def directory(self) -> Path:
        return self.config.parent


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


def read_network_config(config_class: type[Config], path: str | Path) -> Config:
    """The checked architecture in a checkpoint's config.json: every constructor argument present,
    of its type and range, fitting together, and the network no larger than MAX_PARAMETERS.
    Unknown keys are ignored, as huggingface_hub's mixin does. ValueError naming the file otherwise."""
    config = config_class.from_dict(read_config(path), str(path))
    count = config.parameter_count
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"{path} asks for a network of {count:,} parameters ({count * 4 / 1e9:,.1f} GB in float32); "
            f"more than {MAX_PARAMETERS:,} is refused as a corrupt or hostile config (Kronos-base has about 102M)"
        )
    return config


def load_weights(module: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    """Copy a safetensors file's tensors into `module`, each checked first (see `read_weights`)."""
    module.load_state_dict(read_weights(module, path, strict), strict=strict)


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


def _local_files(cls_name: str, directory: Path) -> CheckpointFiles:
    config, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config.is_file():
        raise FileNotFoundError(
            f"{cls_name} checkpoint directory {str(directory)!r} has no {CONFIG_NAME}; a checkpoint directory "
            f"holds {CONFIG_NAME} and {WEIGHTS_NAME} as written by save_pretrained(); {BY_NAME_HINT}"
        )
    if not weights.is_file():
        raise _no_safetensors(cls_name, str(directory), (directory / PICKLE_WEIGHTS_NAME).is_file())
    return CheckpointFiles(config, weights)


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
) -> CheckpointFiles:
    """config.json and model.safetensors of a Hub model: from the local cache when both are there,
    else from the Hub after one quick probe, so that an unreachable Hub fails in seconds rather
    than after a series of retries."""
    cached = {
        name: try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=revision)
        for name in (CONFIG_NAME, WEIGHTS_NAME, PICKLE_WEIGHTS_NAME)
    }
    config, weights = cached[CONFIG_NAME], cached[WEIGHTS_NAME]
    if isinstance(config, str) and isinstance(weights, str) and not force_download:
        return CheckpointFiles(Path(config), Path(weights))
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
                f"{cls_name} {repo_id!r} was not found on the Hugging Face Hub (check the name; a private or "
                f"gated model needs `hf auth login`), or it has no {CONFIG_NAME}: {type(err).__name__}"
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
                return CheckpointFiles(Path(config), Path(download(WEIGHTS_NAME)))
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


def find_checkpoint(
    name_or_path: str | Path,
    cls_name: str,
    part: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | bool | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> CheckpointFiles:
    """The files of the checkpoint of a `cls_name` network in a local directory or a Hugging Face
    Hub repo ('owner/name'; read from the local cache when it is there, else downloaded).

    `part` ('model' or 'tokenizer') names the command-line flag an error suggests. Raises
    FileNotFoundError when the directory, cache or Hub lacks a file or the name is neither.
    """
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return _local_files(cls_name, path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise FileNotFoundError(
            f"{cls_name}: {name!r} is neither a checkpoint directory nor a Hugging Face Hub id of the form "
            f"'owner/name'; {BY_NAME_HINT}"
        )
    return _hub_files(
        cls_name,
        f"--{part}",
        name,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        force_download=force_download,
        local_files_only=local_files_only,
    )


NetworkT = TypeVar("NetworkT", bound="Network[Any]")


class Network(PyTorchModelHubMixin, Generic[Config]):
    """What the model and the tokenizer share as checkpoints: built from a config, loaded from a
    directory or a Hugging Face Hub id, written as upstream writes them (huggingface_hub's mixin).

    A subclass names its `config_class` and the `part` ('model' or 'tokenizer') an error suggests
    a flag for, and is an nn.Module whose constructor takes the config's fields.
    """

    config_class: ClassVar[type[NetworkConfig]]
    part: ClassVar[str]

    @classmethod
    def from_config(cls: type[NetworkT], config: Config) -> NetworkT:
        """A randomly initialised network of the architecture `config`."""
        return cls(**dataclasses.asdict(config))

    @classmethod
    def from_pretrained(
        cls: type[NetworkT], pretrained_model_name_or_path: str | Path, *, strict: bool = True, **hub: Any
    ) -> NetworkT:
        """Load a checkpoint directory or a Hugging Face Hub id ('owner/name').

        `hub` takes revision, cache_dir, token, force_download and local_files_only (see
        `find_checkpoint`); a shipped model's name is loaded by `kronos.load_pretrained`.
        FileNotFoundError when a file is missing, ValueError when the config or the weights fail
        their checks; `strict=True` also rejects missing or extra weights.
        """
        checkpoint = find_checkpoint(pretrained_model_name_or_path, cls.__name__, cls.part, **hub)
        network = cls.from_config(read_network_config(cls.config_class, checkpoint.config))
        assert isinstance(network, torch.nn.Module)
        load_weights(network, checkpoint.weights, strict)
        network.eval()
        network.loaded_from(str(pretrained_model_name_or_path), checkpoint)
        return network

    def loaded_from(self, name: str, checkpoint: CheckpointFiles) -> None:
        """What a subclass reads beside the weights it was loaded with (nothing here)."""
