"""Training configuration: a TOML file, defaults for everything, and `--set key=value` overrides."""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronos.engine.sampling import MIN_TEMPERATURE, TEMPERATURE, TOP_P
from kronos.forecasting.core import MAX_CONTEXT
from kronos.forecasting.series import FEATURE_COLUMNS
from kronos.forecasting.tables import TableLayout
from kronos.nn import config as networks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

STAGES = ("tokenizer", "predictor")


MIRRORS = ("none", "intraday", "all")
"""Which series' windows a stage also sees mirrored (kronos.training.dataset.mirror_window):
every other window of the series with bars less than a day apart ("intraday"), of every series
("all"), or none."""


@dataclass
class DataConfig:
    """Where the bars come from and how training windows are cut from them."""

    paths: list[str] = field(default_factory=list)
    id_column: str = ""
    timestamp_column: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    window: int = 128
    history: int = 0
    val_fraction: float = 0.1
    stride: int = 1
    clip: float = 5.0

    def layout(self) -> TableLayout:
        """How the data files hold their bars (an empty string: not given)."""
        return TableLayout(self.id_column or None, self.columns, self.timestamp_column or None)

    def history_len(self) -> int:
        """Bars at a window's start whose statistics normalise the whole window (0 means window - 20)."""
        return self.history if self.history > 0 else max(self.window - 20, self.window // 2)


@dataclass
class NetworkConfig:
    """A network to fine-tune (`pretrained`), or the transformer of a new one: what the tokenizer
    and the predictor both have. The defaults are the predictor's; the tokenizer's are smaller."""

    pretrained: str = ""
    d_model: int = 128
    n_heads: int = 4
    ff_dim: int = 256
    ffn_dropout_p: float = 0.1
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.1


@dataclass
class TokenizerConfig(NetworkConfig):
    """A tokenizer to fine-tune or use (`pretrained`), or the architecture of a new one."""

    d_model: int = 64
    ff_dim: int = 128
    ffn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    n_enc_layers: int = 3
    n_dec_layers: int = 3
    s1_bits: int = 6
    s2_bits: int = 6
    beta: float = 0.05
    gamma0: float = 1.0
    gamma: float = 1.1
    zeta: float = 0.05
    group_size: int = 4

    def network(self) -> networks.TokenizerConfig:
        """The architecture of a new tokenizer of the bar columns; ValueError naming the bad key."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k != "pretrained"}
        return networks.TokenizerConfig.from_dict(
            {"d_in": len(FEATURE_COLUMNS), **values}, "config [tokenizer]"
        )


@dataclass
class ModelConfig(NetworkConfig):
    """A predictor to fine-tune (`pretrained`) or the architecture of a new one.

    `tokenizer` names the frozen tokenizer the predictor learns on; empty means the tokenizer
    stage's best checkpoint in the output directory, else `[tokenizer] pretrained`.
    """

    tokenizer: str = ""
    n_layers: int = 4
    token_dropout_p: float = 0.0
    learn_te: bool = True

    def network(self, s1_bits: int, s2_bits: int) -> networks.ModelConfig:
        """The architecture of a new model of the tokenizer's tokens; ValueError naming the bad key."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("pretrained", "tokenizer")}
        return networks.ModelConfig.from_dict(
            {"s1_bits": s1_bits, "s2_bits": s2_bits, **values}, "config [model]"
        )


@dataclass
class SamplingConfig:
    """How the trained predictor samples unless told otherwise: written to its kronos.json
    ("sampling"), and what the forecast metrics that choose its checkpoint sample with.
    `temperatures`, when given, are the candidates scripts/train_default_model.py's `temperature`
    step scores the best checkpoint at on the validation data, writing the best into its
    kronos.json in place of `temperature` (empty: keep `temperature`)."""

    temperature: float = TEMPERATURE
    top_p: float = TOP_P
    temperatures: list[float] = field(default_factory=list)


@dataclass
class ForecastConfig:
    """How the trained predictor's forecasts are made unless told otherwise, beyond sampling:
    written to its kronos.json. `anchor` starts every forecast from the last close rather than
    from the tokenizer's reconstruction of it (kronos.forecasting.core.anchor_paths; docs/training.md).
    `center` keeps the median of uncalibrated forecasts flat at the last close
    (kronos.forecasting.core.center_paths): for a model whose median move proves to be noise on
    series it never saw (docs/calibration.md, "Centering"); off unless measured so."""

    anchor: bool = True
    center: bool = False


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping for one stage."""

    out_dir: str = "runs/kronos"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 4e-4
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_fraction: float = 0.05
    grad_clip: float = 3.0
    samples_per_epoch: int = 0
    val_samples: int = 0
    patience: int = 3
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    log_every: int = 10
    keep_checkpoints: int = 0
    progress: bool = True
    mirror: str = "none"

    def __post_init__(self) -> None:
        if self.mirror not in MIRRORS:
            raise ValueError(f"config train.mirror must be one of {list(MIRRORS)}, got {self.mirror!r}")


@dataclass
class Config:
    """The whole training configuration; `[train.tokenizer]` / `[train.predictor]` refine `[train]`."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    stage_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_dir: str = "."

    def train_for(self, stage: str) -> TrainConfig:
        """`[train]` with the stage's own table applied and `out_dir` made stage-specific."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {list(STAGES)}")
        merged = dataclasses.asdict(self.train)
        merged.update(self.stage_train.get(stage, {}))
        merged["out_dir"] = str(Path(self.resolve_path(merged["out_dir"])) / stage)
        return _build(TrainConfig, merged, f"train.{stage}")

    def resolve_path(self, path: str) -> str:
        """A path from the config file, relative to the file's directory."""
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else Path(self.base_dir) / p)

    def to_dict(self) -> dict[str, Any]:
        out = {
            name: dataclasses.asdict(getattr(self, name))
            for name in ("data", "tokenizer", "model", "train", "sampling", "forecast")
        }
        for stage, table in self.stage_train.items():
            out["train"][stage] = dict(table)
        return out


SECTIONS = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "sampling": SamplingConfig,
    "forecast": ForecastConfig,
}


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: from `low` (excluded when `low_open`) to `high`
    (excluded when `high_open`); None is unbounded. `meaning` says what the setting is, for the error."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        low = "" if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low:g}"
        high = "" if self.high is None else f"{'below' if self.high_open else 'at most'} {self.high:g}"
        return " and ".join(part for part in (low, high) if part) or "finite"


COUNT, WHOLE = Bounds(1), Bounds(0)
FRACTION = Bounds(0, 1, high_open=True)
DROPOUT = Bounds(0, 1, high_open=True, meaning="a dropout probability")
# every numeric setting's range (a list's: each element's), checked when a config is built
BOUNDS: dict[type, dict[str, Bounds]] = {
    DataConfig: {
        "window": Bounds(2, MAX_CONTEXT, meaning="bars per training window"),
        "history": Bounds(0, MAX_CONTEXT, meaning="0: window - 20"),
        "val_fraction": FRACTION,
        "stride": COUNT,
        "clip": Bounds(0, low_open=True, meaning="normalised bars are clipped to ±clip"),
    },
    NetworkConfig: {"ffn_dropout_p": DROPOUT, "attn_dropout_p": DROPOUT, "resid_dropout_p": DROPOUT},
    ModelConfig: {"token_dropout_p": DROPOUT},
    TrainConfig: {
        "epochs": COUNT,
        "batch_size": Bounds(1, meaning="windows per step and process"),
        "lr": Bounds(0, meaning="0 trains nothing"),
        "weight_decay": WHOLE,
        "betas": FRACTION,
        "warmup_fraction": Bounds(0, 1),
        "grad_clip": Bounds(0, meaning="0: no clipping"),
        "samples_per_epoch": Bounds(0, meaning="0: every window"),
        "val_samples": Bounds(0, meaning="0: every window"),
        "patience": Bounds(0, meaning="0: no early stop"),
        "min_delta": WHOLE,
        "seed": WHOLE,
        "num_threads": Bounds(0, meaning="0: torch's default"),
        "log_every": COUNT,
        "keep_checkpoints": Bounds(0, meaning="0: all"),
    },
    SamplingConfig: {
        "temperature": Bounds(MIN_TEMPERATURE, meaning="logits are divided by it"),
        "temperatures": Bounds(MIN_TEMPERATURE, meaning="the temperatures the best checkpoint is scored at"),
        "top_p": Bounds(0, 1, low_open=True, meaning="nucleus sampling threshold"),
    },
}


def _check_bounds(cls: type, key: str, value: Any) -> None:
    """ValueError naming `key` when its value (each of a list's values) is out of its range."""
    name = key.rsplit(".", 1)[-1]
    found = [table[name] for kind, table in BOUNDS.items() if issubclass(cls, kind) and name in table]
    if not found:
        return
    bounds = found[0]
    if name == "betas" and len(value) != 2:
        raise ValueError(f"config {key} must be two numbers (Adam's beta1, beta2), got {value!r}")
    for one in value if isinstance(value, list) else [value]:
        if isinstance(one, bool) or not isinstance(one, (int, float)) or not bounds.holds(one):
            meaning = f" ({bounds.meaning})" if bounds.meaning else ""
            raise ValueError(f"config {key} must be {bounds.describe()}{meaning}, got {value!r}")


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"unknown key(s) {[f'{where}.{k}' for k in unknown]}; [{where}] takes {sorted(known)}"
        )
    defaults = cls()
    values = dict(values)
    for key, value in values.items():
        if isinstance(getattr(defaults, key), list) and isinstance(value, str):
            values[key] = value = [value]
        _check_type(f"{where}.{key}", value, getattr(defaults, key))
        _check_bounds(cls, f"{where}.{key}", value)
    return cls(**{k: copy.deepcopy(v) for k, v in values.items()})


def _check_type(key: str, value: Any, default: Any) -> None:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"config {key} must be a {type(default).__name__}, got {value!r}")


def config_from_dict(raw: dict[str, Any], base_dir: str | Path = ".") -> Config:
    """Build a Config from nested dicts (as parsed from TOML), rejecting unknown keys and wrong types."""
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config section(s) {unknown}; sections are {sorted(SECTIONS)}")
    built: dict[str, Any] = {}
    stage_train: dict[str, dict[str, Any]] = {}
    for name, cls in SECTIONS.items():
        values = dict(raw.get(name, {}))
        if not isinstance(raw.get(name, {}), dict):
            raise ValueError(f"config [{name}] must be a table")
        if name == "train":
            for stage in STAGES:
                if stage in values:
                    stage_train[stage] = dict(values.pop(stage))
                    _build(TrainConfig, stage_train[stage], f"train.{stage}")
        built[name] = _build(cls, values, name)
    if built["data"].window < 2:
        raise ValueError(f"data.window must be at least 2, got {built['data'].window}")
    history = built["data"].history_len()
    if not 1 < history <= built["data"].window:
        raise ValueError(
            f"data.history must be between 2 and data.window ({built['data'].window}), got {history}"
        )
    if not 0 <= built["data"].val_fraction < 1:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {built['data'].val_fraction}")
    if built["data"].stride < 1:
        raise ValueError(f"data.stride must be at least 1, got {built['data'].stride}")
    try:
        built["data"].layout()
    except ValueError as err:
        raise ValueError(f"data.columns: {err}") from err
    return Config(**built, stage_train=stage_train, base_dir=str(base_dir))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (path, value); the value is read as TOML, else taken as a string."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value, e.g. train.lr=1e-3")
    key, value = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ValueError(f"override key {key!r} must name a section and a key, e.g. train.lr")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path, parsed


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML config (or start from defaults) and apply `section.key=value` overrides."""
    raw: dict[str, Any] = {}
    base_dir: str | Path = "."
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {path} is not valid TOML: {err}") from err
        base_dir = path.resolve().parent
    for text in overrides:
        keys, value = parse_override(text)
        table = raw
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ValueError(f"override {text!r}: {key!r} is not a table")
        table[keys[-1]] = value
    return config_from_dict(raw, base_dir)
