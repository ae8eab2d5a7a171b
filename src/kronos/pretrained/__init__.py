"""Checkpoints shipped inside the package, and resolution of model names to checkpoint locations."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "kronos-default"
PARTS = ("tokenizer", "model")


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
