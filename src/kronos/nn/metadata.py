"""A predictor checkpoint's metadata: the `kronos.json` beside its config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METADATA_NAME = "kronos.json"
UPSTREAM_CONTEXT = 512


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


def read_metadata(name: str, location: str | Path) -> ModelMetadata | None:
    """The metadata of the predictor checkpoint `name` whose files are in directory `location`:
    its kronos.json, the known values of a published Hub model, or None."""
    path = Path(location, METADATA_NAME)
    if path.is_file():
        try:
            values = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        return ModelMetadata.from_dict(values, str(path))
    return HUB_METADATA.get(name)
