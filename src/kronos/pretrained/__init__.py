"""Checkpoints shipped inside the package, and resolution of model names to checkpoint locations."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "kronos-default"
PARTS = ("tokenizer", "model")
HUB_TOKENIZERS = {
    "NeoQuasar/Kronos-mini": "NeoQuasar/Kronos-Tokenizer-2k",
    "NeoQuasar/Kronos-small": "NeoQuasar/Kronos-Tokenizer-base",
    "NeoQuasar/Kronos-base": "NeoQuasar/Kronos-Tokenizer-base",
}

_NO_DROPOUT = dict(ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0)
_BITS = dict(s1_bits=10, s2_bits=10)
# Architectures of the published checkpoints (kronos-semantics.md), dropouts 0: the constructor
# arguments for randomly initialised networks of the same shapes, as the benchmarks use.
PUBLISHED_CONFIGS: dict[str, dict] = {
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


def shipped_dir(name: str = DEFAULT_MODEL) -> Path:
    """Directory of a shipped model, holding `tokenizer/` and `model/` checkpoints."""
    return Path(__file__).resolve().parent / name


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
        raise ValueError(
            f"model {model!r} comes without a tokenizer: name one with --tokenizer (a directory or hub id)"
        )
    return tokenizer_source
