"""Checkpoints shipped inside the package, model names, and the one way to load a model by name.

`Kronos.from_pretrained` and `KronosTokenizer.from_pretrained` read a checkpoint directory or a Hub
id; the names they do not know (a shipped model, a directory holding `model/` and `tokenizer/`, the
tokenizer published with a Hub model) are resolved here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from kronos.nn.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from kronos.nn.metadata import ModelMetadata, read_metadata
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer

DEFAULT_MODEL = "kronos-default"
PARTS = ("tokenizer", "model")
HUB_TOKENIZERS = {
    "NeoQuasar/Kronos-mini": "NeoQuasar/Kronos-Tokenizer-2k",
    "NeoQuasar/Kronos-small": "NeoQuasar/Kronos-Tokenizer-base",
    "NeoQuasar/Kronos-base": "NeoQuasar/Kronos-Tokenizer-base",
}


def shipped_dir(name: str = DEFAULT_MODEL) -> Path:
    """Directory of a shipped model, holding `tokenizer/` and `model/` checkpoints."""
    return Path(__file__).resolve().parent.parent / "shipped" / name


def resolve_checkpoint(name: str, part: str) -> str:
    """Where to load `part` ('tokenizer' or 'model') of `name` from.

    `name` is a shipped model's name (e.g. 'kronos-default'), a directory holding `tokenizer/`
    and `model/` checkpoints, a checkpoint directory, or a Hugging Face Hub id (returned as is).
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    shipped = shipped_dir(name) if "/" not in name and "\\" not in name else None
    if shipped is not None and (shipped / part).is_dir():
        return str(shipped / part)
    path = Path(name).expanduser()
    if path.is_dir() and (path / part / "config.json").is_file():
        return str(path / part)
    return str(path) if path.exists() else name


def resolve_tokenizer(model: str, tokenizer: str | None = None) -> str | None:
    """Where to load the tokenizer of `model` from (see `resolve_checkpoint`).

    `tokenizer` if given, else the published companion of a Kronos hub model, else the
    `tokenizer/` beside the model, else the one its kronos.json records (`kronos train` writes
    it). None for a Hub id known only to the Hub: its own files decide (`load_pretrained`). A
    local checkpoint without any has none: ValueError.
    """
    if tokenizer:
        return resolve_checkpoint(tokenizer, "tokenizer")
    if model in HUB_TOKENIZERS:
        return HUB_TOKENIZERS[model]
    tokenizer_source = resolve_checkpoint(model, "tokenizer")
    if tokenizer_source != resolve_checkpoint(model, "model"):
        return tokenizer_source
    if Path(tokenizer_source).exists():
        metadata = read_metadata(model, tokenizer_source)
        if metadata is not None and metadata.tokenizer:
            return recorded_tokenizer(Path(tokenizer_source), metadata.tokenizer)
        raise ValueError(f"model {model!r} comes without a tokenizer: {NO_TOKENIZER}")
    if model.count("/") != 1:
        raise FileNotFoundError(
            f"model {model!r} is neither a checkpoint directory nor a Hugging Face Hub id of the form "
            f"'owner/name', nor a shipped model ({DEFAULT_MODEL!r})"
        )
    return None


NO_TOKENIZER = "name one with --tokenizer (a directory or hub id), or tokenizer= in Python"


def recorded_tokenizer(checkpoint: Path, recorded: str) -> str:
    """Where the tokenizer a checkpoint's kronos.json records lies: a directory relative to the
    checkpoint (as `ModelMetadata.write` records it), else a shipped name, an absolute directory or
    a Hub id, as `resolve_checkpoint` reads them."""
    beside = checkpoint / recorded
    return resolve_checkpoint(str(beside) if beside.exists() else recorded, "tokenizer")


def tokenizer_reference(source: str) -> str:
    """How a model trained on the tokenizer at `source` records it in its kronos.json: a shipped
    model's name, an absolute directory (written relative to the checkpoint), or a Hub id."""
    path = Path(source)
    if not path.exists():
        return source
    for shipped in shipped_dir().parent.iterdir():
        if path.resolve() == (shipped / "tokenizer").resolve():
            return shipped.name
    return str(path.resolve())


def load_pretrained(
    model: str = DEFAULT_MODEL, tokenizer: str | None = None
) -> tuple[Kronos, KronosTokenizer]:
    """The model (with its `metadata`) and its tokenizer, by name: a shipped model, a directory
    or a Hub id. The tokenizer is resolved first, so a local model without one fails before any
    weights load; a Hub model no one names the tokenizer of is loaded first, so that a name the
    Hub does not know is reported as not found."""
    tokenizer_location = resolve_tokenizer(model, tokenizer)
    network = Kronos.from_pretrained(resolve_checkpoint(model, "model"))
    if tokenizer_location is None:
        recorded = network.metadata.tokenizer if network.metadata is not None else None
        if not recorded:
            raise ValueError(f"model {model!r} comes without a tokenizer: {NO_TOKENIZER}")
        tokenizer_location = resolve_checkpoint(recorded, "tokenizer")
    return network, KronosTokenizer.from_pretrained(tokenizer_location)


@dataclass(frozen=True)
class OfflineModel:
    """A model that loads without the network: its name (what `load_pretrained` takes), where
    it is ("shipped" with the package, or the local Hugging Face "hub cache") and its metadata."""

    name: str
    source: str
    metadata: ModelMetadata


def offline_models() -> list[OfflineModel]:
    """The models `load_pretrained` can load here without the network: the shipped ones, then the
    published Hub models whose model and tokenizer are both in the local Hugging Face cache."""
    models = []
    for directory in sorted(shipped_dir().parent.iterdir()):
        if all((directory / part / CONFIG_NAME).is_file() for part in PARTS):
            metadata = read_metadata(directory.name, directory / "model") or ModelMetadata()
            models.append(OfflineModel(directory.name, "shipped", metadata))
    for hub_id, tokenizer in HUB_TOKENIZERS.items():
        config = _cached(hub_id)
        if config is not None and _cached(tokenizer) is not None:
            metadata = read_metadata(hub_id, config.parent) or ModelMetadata()
            models.append(OfflineModel(hub_id, "hub cache", metadata))
    return models


def _cached(hub_id: str) -> Path | None:
    """The cached config.json of a Hub checkpoint whose weights are cached too, else None."""
    config, weights = (try_to_load_from_cache(hub_id, name) for name in (CONFIG_NAME, WEIGHTS_NAME))
    return Path(config) if isinstance(config, str) and isinstance(weights, str) else None
