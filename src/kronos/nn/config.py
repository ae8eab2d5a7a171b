"""Architectures of the Kronos model and tokenizer: frozen configs, checked when made.

A config's fields are exactly its network's constructor arguments, so a checkpoint's config.json
(the constructor's keyword arguments) reads into a config and `dataclasses.asdict` gives it back.
Each config derives its network's parameter count without building it: the checkpoint loader
refuses oversized networks by it, and whoever reports a model's size reads it there.
"""

from __future__ import annotations

import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from kronos.nn.layers import DEPENDENCY_HEADS, TIME_FEATURE_SIZES, BlockShape

MAX_BITS = 30  # token ids are int64 and the full code of s1 + s2 bits indexes one
MAX_GROUP_SIZE = 16  # the tokenizer's quantizer keeps a table of 2**group_size codes


def _check_value(key: str, value: object, expected: object) -> None:
    """Type and range of one field; the ranges follow from the fields' names."""
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key!r} must be true or false, got {value!r:.60}")
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key!r} must be an integer, got {value!r:.60}")
        if value < 1:
            raise ValueError(f"{key!r} must be at least 1, got {value}")
        if key.endswith("_bits") and value > MAX_BITS:
            raise ValueError(f"{key!r} must be at most {MAX_BITS}, got {value}")
    elif expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{key!r} must be a finite number, got {value!r:.60}")
        if key.endswith("_p") and not 0 <= value < 1:
            raise ValueError(f"{key!r} is a dropout probability, in [0, 1), got {value}")


def _check_head_size(d_model: int, n_heads: int, heads: str) -> None:
    """d_model / n_heads must be an even whole number: rotary embeddings turn pairs of a head's coordinates."""
    head_dim, rest = divmod(d_model, n_heads)
    if rest or head_dim % 2:
        raise ValueError(
            f"'d_model' ({d_model}) divided by {heads} ({n_heads}) must be an even whole number, "
            f"the size of a head: rotary embeddings turn pairs of its coordinates"
        )


def _block_parameters(d_model: int, ff_dim: int) -> int:
    """A Transformer block: two RMSNorm weights, attention's four projections, the gated feed-forward."""
    return 2 * d_model + 4 * (d_model * d_model + d_model) + 3 * d_model * ff_dim


ConfigT = TypeVar("ConfigT", bound="NetworkConfig")


@dataclass(frozen=True, kw_only=True)
class NetworkConfig(BlockShape, ABC):
    """What the two architectures share: the shape of their Transformer blocks, fields checked
    when made (types and ranges follow from the fields' annotations and names), a reading from a
    config.json, a parameter count."""

    def __post_init__(self) -> None:
        """ValueError naming the field whose type or range is wrong, or the fields that do not fit together."""
        hints = typing.get_type_hints(type(self))
        for field in fields(self):
            _check_value(field.name, getattr(self, field.name), hints[field.name])
        _check_head_size(self.d_model, self.n_heads, "'n_heads'")
        self.check_fit()

    @abstractmethod
    def check_fit(self) -> None:
        """ValueError naming the fields that do not fit together (each field is valid alone)."""

    @property
    @abstractmethod
    def parameter_count(self) -> int:
        """Parameters of the network, without building it."""

    @classmethod
    def from_dict(cls: type[ConfigT], values: Mapping[str, Any], source: str) -> ConfigT:
        """The config in a mapping of constructor arguments (a config.json), other keys ignored;
        ValueError naming `source` and the key otherwise."""
        names = [field.name for field in fields(cls)]
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"{source} lacks {missing}; {cls.__name__} needs {names}")
        try:
            return cls(**{name: values[name] for name in names})
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from err


@dataclass(frozen=True, kw_only=True)
class ModelConfig(NetworkConfig):
    """The architecture of a Kronos model: the arguments of `Kronos(...)`."""

    s1_bits: int
    s2_bits: int
    n_layers: int
    token_dropout_p: float
    learn_te: bool

    def check_fit(self) -> None:
        """Whole heads of an even size for the dependency-aware layer's heads too."""
        _check_head_size(self.d_model, DEPENDENCY_HEADS, "the dependency-aware layer's heads")

    @property
    def parameter_count(self) -> int:
        """Parameters of the network, without building it."""
        d, vocab = self.d_model, (1 << self.s1_bits) + (1 << self.s2_bits)
        attention = 4 * (d * d + d)
        embedding = vocab * d + 2 * d * d + d + sum(TIME_FEATURE_SIZES) * d
        dependency = attention + d
        head = vocab * (d + 1)
        return embedding + self.n_layers * _block_parameters(d, self.ff_dim) + d + dependency + head


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig(NetworkConfig):
    """The architecture of a Kronos tokenizer: the arguments of `KronosTokenizer(...)`."""

    d_in: int
    n_enc_layers: int
    n_dec_layers: int
    s1_bits: int
    s2_bits: int
    beta: float
    gamma0: float
    gamma: float
    zeta: float
    group_size: int

    def check_fit(self) -> None:
        """s1 and s2 codes of one size, a quantizer group that divides the code."""
        if self.s1_bits != self.s2_bits:
            raise ValueError(
                f"'s1_bits' ({self.s1_bits}) and 's2_bits' ({self.s2_bits}) must be equal: "
                f"decoding (s1, s2) tokens splits the code in two halves of equal size"
            )
        if self.group_size > MAX_GROUP_SIZE or self.codebook_dim % self.group_size:
            raise ValueError(
                f"'group_size' ({self.group_size}) must divide s1_bits + s2_bits ({self.codebook_dim}) and be "
                f"at most {MAX_GROUP_SIZE}"
            )

    @property
    def codebook_dim(self) -> int:
        """Bits of a bar's full code, s1 then s2."""
        return self.s1_bits + self.s2_bits

    @property
    def parameter_count(self) -> int:
        """Parameters of the network, without building it (the encoder and decoder hold n - 1 blocks each)."""
        d, d_in, code = self.d_model, self.d_in, self.codebook_dim
        blocks = (self.n_enc_layers - 1 + self.n_dec_layers - 1) * _block_parameters(d, self.ff_dim)
        linears = (d_in + 1) * d + (d + 1) * code + (self.s1_bits + 1) * d + (code + 1) * d + (d + 1) * d_in
        return linears + blocks


_NO_DROPOUT = dict(ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0)

# The published checkpoints' architectures (docs/architecture.md) with dropouts 0: randomly
# initialised networks of their shapes, as the benchmarks use.
KRONOS_TOKENIZER_BASE = TokenizerConfig(
    d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, s1_bits=10, s2_bits=10,
    beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4, **_NO_DROPOUT,
)  # fmt: skip
KRONOS_MINI = ModelConfig(
    s1_bits=10, s2_bits=10, n_layers=4, d_model=256, n_heads=4, ff_dim=512, token_dropout_p=0.0,
    learn_te=True, **_NO_DROPOUT,
)  # fmt: skip
KRONOS_SMALL = ModelConfig(
    s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, token_dropout_p=0.0,
    learn_te=True, **_NO_DROPOUT,
)  # fmt: skip
KRONOS_BASE = ModelConfig(
    s1_bits=10, s2_bits=10, n_layers=12, d_model=832, n_heads=16, ff_dim=2048, token_dropout_p=0.0,
    learn_te=True, **_NO_DROPOUT,
)  # fmt: skip
PUBLISHED_CONFIGS: dict[str, ModelConfig | TokenizerConfig] = {
    "NeoQuasar/Kronos-Tokenizer-base": KRONOS_TOKENIZER_BASE,
    "NeoQuasar/Kronos-mini": KRONOS_MINI,
    "NeoQuasar/Kronos-small": KRONOS_SMALL,
    "NeoQuasar/Kronos-base": KRONOS_BASE,
}
