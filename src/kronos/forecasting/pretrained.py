"""Checkpoints shipped inside the package, model names, and the one way to load a model with its metadata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kronos.nn.model import Kronos
    from kronos.nn.tokenizer import KronosTokenizer

DEFAULT_MODEL = "kronos-default"
PARTS = ("tokenizer", "model")
METADATA_NAME = "kronos.json"
HUB_TOKENIZERS = {
    "NeoQuasar/Kronos-mini": "NeoQuasar/Kronos-Tokenizer-2k",
    "NeoQuasar/Kronos-small": "NeoQuasar/Kronos-Tokenizer-base",
    "NeoQuasar/Kronos-base": "NeoQuasar/Kronos-Tokenizer-base",
}
UPSTREAM_CONTEXT = 512

_NO_DROPOUT = dict(ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0)
_BITS = dict(s1_bits=10, s2_bits=10)
# Architectures of the published checkpoints (docs/architecture.md), dropouts 0: the constructor
# arguments for randomly initialised networks of the same shapes, as the benchmarks use.
PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "NeoQuasar/Kronos-Tokenizer-base": dict(
        d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, beta=0.05, gamma0=1.0,
        gamma=1.1, zeta=0.05, group_size=4, **_BITS, **_NO_DROPOUT,
    ),
    "NeoQuasar/Kronos-mini": dict(
        n_layers=4, d_model=256, n_heads=4, ff_dim=512, token_dropout_p=0.0, learn_te=True, **_BITS, **_NO_DROPOUT
    ),
    "NeoQuasar/Kronos-small": dict(
        n_layers=8, d_model=512, n_heads=8, ff_dim=1024, token_dropout_p=0.0, learn_te=True, **_BITS, **_NO_DROPOUT
    ),
    "NeoQuasar/Kronos-base": dict(
        n_layers=12, d_model=832, n_heads=16, ff_dim=2048, token_dropout_p=0.0, learn_te=True, **_BITS, **_NO_DROPOUT
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ModelMetadata:
    """What a predictor checkpoint knows about the data it suits, from the `kronos.json` beside
    its `config.json` (written by `kronos train`; known values for the published Hub models).

    max_context: the window the model attends to. history: the bars of history per training
    window, whose statistics normalised it (the lookback the model wants; None when unknown).
    frequencies: the bar spacings it was trained on (pandas aliases, e.g. "1D", "1h", "5min").
    Other keys of the file are kept in `extra`.
    """

    max_context: int = UPSTREAM_CONTEXT
    history: int | None = None
    frequencies: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lookback(self) -> int:
        """Bars of history a forecast should give the model: its training history, else its context."""
        return self.history or self.max_context

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> ModelMetadata:
        if not isinstance(values, dict):
            raise ValueError(f"{source} must hold a JSON object, got {type(values).__name__}")
        known = {"max_context", "history", "frequencies"}
        for key in ("max_context", "history"):
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{source}: {key!r} must be a positive integer, got {value!r}")
        frequencies = values.get("frequencies", [])
        if not isinstance(frequencies, list) or not all(isinstance(f, str) for f in frequencies):
            raise ValueError(f"{source}: 'frequencies' must be a list of strings, got {frequencies!r}")
        return cls(
            max_context=values.get("max_context") or UPSTREAM_CONTEXT,
            history=values.get("history"),
            frequencies=tuple(frequencies),
            extra={k: v for k, v in values.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        extra = values.pop("extra")
        values["frequencies"] = list(self.frequencies)
        return {**values, **extra}

    def write(self, directory: str | Path) -> None:
        Path(directory, METADATA_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


HUB_METADATA = {
    "NeoQuasar/Kronos-mini": ModelMetadata(max_context=2048),
    "NeoQuasar/Kronos-small": ModelMetadata(max_context=512),
    "NeoQuasar/Kronos-base": ModelMetadata(max_context=512),
}


def read_metadata(name: str, location: str) -> ModelMetadata | None:
    """The metadata of a predictor checkpoint: its kronos.json, the known values of a published
    Hub model, or None."""
    path = Path(location, METADATA_NAME)
    if path.is_file():
        try:
            values = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        return ModelMetadata.from_dict(values, str(path))
    return HUB_METADATA.get(name)


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


def resolve_tokenizer(model: str, tokenizer: str | None = None) -> str:
    """Where to load the tokenizer of `model` from (see `resolve_checkpoint`).

    `tokenizer` if given, else the published companion of a Kronos hub model, else the
    `tokenizer/` beside the model. A single model checkpoint (or a path that does not exist)
    has none: ValueError.
    """
    if tokenizer:
        return resolve_checkpoint(tokenizer, "tokenizer")
    if model in HUB_TOKENIZERS:
        return HUB_TOKENIZERS[model]
    tokenizer_source = resolve_checkpoint(model, "tokenizer")
    if tokenizer_source == resolve_checkpoint(model, "model"):
        if not Path(tokenizer_source).exists() and model.count("/") != 1:
            raise FileNotFoundError(
                f"model {model!r} is neither a checkpoint directory nor a Hugging Face Hub id of the form "
                f"'owner/name', nor a shipped model ({DEFAULT_MODEL!r})"
            )
        raise ValueError(
            f"model {model!r} comes without a tokenizer: name one with --tokenizer (a directory or hub id)"
        )
    return tokenizer_source


def load_pretrained(
    model: str = DEFAULT_MODEL, tokenizer: str | None = None
) -> tuple[Kronos, KronosTokenizer]:
    """The model (with its `metadata`) and its tokenizer, by name: a shipped model, a directory
    or a Hub id. The tokenizer is resolved first, so a model without one fails before any weights load."""
    from kronos.nn.model import Kronos
    from kronos.nn.tokenizer import KronosTokenizer

    tokenizer_location = resolve_tokenizer(model, tokenizer)
    return Kronos.from_pretrained(model), KronosTokenizer.from_pretrained(tokenizer_location)
