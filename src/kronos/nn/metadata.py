"""A predictor checkpoint's metadata: the `kronos.json` beside its config.json."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METADATA_NAME = "kronos.json"
UPSTREAM_CONTEXT = 512
# A context beyond any published Kronos (Kronos-mini's 2048) by a wide margin, still within memory:
# the key/value cache of one path at this context is a few hundred MB for the published sizes.
MAX_CONTEXT = 16_384
MAX_METADATA_BYTES = 1_000_000
MAX_FREQUENCIES = 1_000
SAMPLING_KEYS = ("temperature", "top_p")


@dataclass(frozen=True)
class SamplingDefaults:
    """How a model samples unless told otherwise: the `"sampling"` object of its kronos.json, e.g.
    `{"temperature": 1.0, "top_p": 1.0}`. A setting left out (None) is the package's
    (kronos.engine.sampling), whose `Sampling` also checks the temperature's floor."""

    temperature: float | None = None
    top_p: float | None = None

    @classmethod
    def from_dict(cls, values: object, source: str) -> SamplingDefaults:
        """The defaults in `values`: a ValueError naming `source`, the key and the value otherwise."""
        if not isinstance(values, dict) or not set(values) <= set(SAMPLING_KEYS):
            raise ValueError(
                f"{source}: 'sampling' must be an object with keys among {list(SAMPLING_KEYS)} "
                f'(e.g. {{"temperature": 1.0, "top_p": 0.9}}), got {str(values)[:200]}'
            )
        temperature, top_p = values.get("temperature"), values.get("top_p")
        if temperature is not None and not (_is_number(temperature) and 0 < temperature < math.inf):
            raise ValueError(
                f"{source}: 'sampling.temperature' must be a positive finite number, got {temperature!r}"
            )
        if top_p is not None and not (_is_number(top_p) and 0 < top_p <= 1):
            raise ValueError(f"{source}: 'sampling.top_p' must be a number in (0, 1], got {top_p!r}")
        return cls(temperature, top_p)

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelMetadata:
    """What a predictor checkpoint knows about the data it suits, from the `kronos.json` beside
    its `config.json` (written by `kronos train`; known values for the published Hub models).

    max_context: the window the model attends to. history: the bars of history per training
    window, whose statistics normalised it (the lookback the model wants; None when unknown).
    frequencies: the bar spacings it was trained on (pandas aliases, e.g. "1D", "1h", "5min").
    tokenizer: the tokenizer it was trained with: a directory (relative to the checkpoint's own,
    or absolute) or a Hub id; None when it lies beside the model (`tokenizer/`) or is unknown.
    sampling: the temperature and top_p it samples with unless told otherwise (`SamplingDefaults`,
    chosen by measuring its forecasts); None: the package's.
    anchor: whether its forecasts start from the last close rather than from its tokenizer's
    reconstruction of it (`"anchor": true`, chosen by measuring its forecasts; see
    kronos.forecasting.core); false for the published models, whose numbers are upstream's.
    center: whether its uncalibrated forecasts keep a flat median (`"center": true`: each step's
    median close moved to the last close, where measuring its forecasts found its median move to
    be noise; see kronos.forecasting.core.center_paths); false for the published models.
    Other keys of the file are kept in `extra`.
    """

    max_context: int = UPSTREAM_CONTEXT
    history: int | None = None
    frequencies: tuple[str, ...] = ()
    tokenizer: str | None = None
    sampling: SamplingDefaults | None = None
    anchor: bool = False
    center: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lookback(self) -> int:
        """Bars of history a forecast should give the model: its training history, else its context."""
        return self.history or self.max_context

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> ModelMetadata:
        """The metadata in `values` (a kronos.json), every known key checked: ValueError naming
        `source` and the key otherwise."""
        if not isinstance(values, dict):
            raise ValueError(f"{source} must hold a JSON object, got {type(values).__name__}")
        known = {"max_context", "history", "frequencies", "tokenizer", "sampling", "anchor", "center"}
        for key in ("max_context", "history"):
            value = values.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONTEXT
            ):
                raise ValueError(
                    f"{source}: {key!r} must be a positive integer of at most {MAX_CONTEXT:,} bars, got {value!r}"
                )
        max_context = values.get("max_context") or UPSTREAM_CONTEXT
        history = values.get("history")
        if history is not None and history > max_context:
            raise ValueError(f"{source}: 'history' ({history}) is longer than 'max_context' ({max_context})")
        frequencies = values.get("frequencies", [])
        if (
            not isinstance(frequencies, list)
            or len(frequencies) > MAX_FREQUENCIES
            or not all(isinstance(f, str) and 0 < len(f) <= 32 for f in frequencies)
        ):
            raise ValueError(
                f"{source}: 'frequencies' must be a list of at most {MAX_FREQUENCIES:,} bar spacings "
                f"(pandas aliases such as '1D'), got {str(frequencies)[:200]}"
            )
        tokenizer = values.get("tokenizer")
        if tokenizer is not None and (not isinstance(tokenizer, str) or not 0 < len(tokenizer) <= 4096):
            raise ValueError(
                f"{source}: 'tokenizer' must be a directory or Hub id (text), got {str(tokenizer)[:200]!r}"
            )
        sampling = values.get("sampling")
        anchor, center = values.get("anchor", False), values.get("center", False)
        for key, flag in (("anchor", anchor), ("center", center)):
            if not isinstance(flag, bool):
                raise ValueError(f"{source}: {key!r} must be true or false, got {str(flag)[:200]!r}")
        return cls(
            max_context=max_context,
            history=history,
            frequencies=tuple(frequencies),
            tokenizer=tokenizer,
            sampling=None if sampling is None else SamplingDefaults.from_dict(sampling, source),
            anchor=anchor,
            center=center,
            extra={k: v for k, v in values.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        extra = values.pop("extra")
        values["frequencies"] = list(self.frequencies)
        if self.tokenizer is None:
            del values["tokenizer"]
        del values["sampling"]
        if self.sampling is not None:
            values["sampling"] = self.sampling.to_dict()
        for flag in ("anchor", "center"):
            if not values[flag]:
                del values[flag]
        return {**values, **extra}

    def write(self, directory: str | Path) -> None:
        """kronos.json in `directory`; a tokenizer directory is recorded relative to it, so that a
        run's folder can move whole."""
        values = self.to_dict()
        if (
            self.tokenizer is not None
            and Path(self.tokenizer).is_absolute()
            and Path(self.tokenizer).exists()
        ):
            values["tokenizer"] = os.path.relpath(self.tokenizer, Path(directory).resolve())
        Path(directory, METADATA_NAME).write_text(json.dumps(values, indent=2) + "\n")


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
        size = path.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"{path} is {size:,} bytes, not a model's metadata (at most {MAX_METADATA_BYTES:,})"
            )
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        except RecursionError as err:
            raise ValueError(f"{path} is not a model's metadata: its JSON is nested too deeply") from err
        return ModelMetadata.from_dict(values, str(path))
    return HUB_METADATA.get(name)
