"""Request and response bodies of the forecasting service (pydantic models, shown at /docs).

Types and ranges that do not depend on the server's settings are checked here; the caps set
on the command line (bars, steps, paths, series) are checked by `Limits.check`, and the bars
themselves by kronos.forecasting.series, so that the service and the library refuse the same things.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, WithJsonSchema, field_validator

from kronos.engine.sampling import PATHS, TEMPERATURE, TOP_P
from kronos.forecasting.paths import DEFAULT_QUANTILE_LEVELS

Price = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # strict: ints, not strings or bools
# Integers a client's JSON parser reads exactly: JavaScript's numbers hold integers up to 2**53 - 1.
MAX_SAFE_INTEGER = 2**53 - 1
SafeInt = Annotated[StrictInt, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
MAX_ID_LENGTH = 200


def _series_id(value: object) -> str | int:
    """A series id: text of 1 to 200 characters, or an integer JavaScript reads exactly."""
    if isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SAFE_INTEGER:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"an integer id must be within ±{MAX_SAFE_INTEGER} (2**53 - 1), as JavaScript reads integers "
            "exactly; send a larger one as a string"
        )
    raise ValueError(f"an id is a string of 1 to {MAX_ID_LENGTH} characters or an integer")


SeriesId = Annotated[
    str | int,
    PlainValidator(_series_id),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
                              {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}]}),
]  # fmt: skip

MAX_QUANTILE_LEVELS = 99


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bar(Strict):
    """One bar. volume and amount are optional: missing from every bar, volume = amount = 0;
    amount missing from every bar, volume x mean(OHLC). A null is a missing number, refused."""

    timestamp: str = Field(max_length=64, examples=["2024-06-18 11:15:00"])
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Price = None  # type: ignore[assignment]  # a default, never a value sent: null is refused
    amount: Price = None  # type: ignore[assignment]


class ForecastOptions(Strict):
    """What to forecast and how to sample it; shared by every forecast route."""

    steps: StrictInt = Field(20, ge=1, description="future bars to forecast")
    paths: StrictInt = Field(PATHS, ge=1, description="sampled paths per series")
    quantile_levels: list[Annotated[float, Field(strict=True)]] = Field(
        list(DEFAULT_QUANTILE_LEVELS),
        max_length=MAX_QUANTILE_LEVELS,
        description="levels strictly inside (0, 1); a comma-separated string is accepted too",
    )
    seed: SafeInt | None = Field(
        0,
        description="with a seed a series' paths come from (seed, series id) alone, as in "
        "predict_quantiles(..., sampling=Sampling(seed=...)); null draws fresh random numbers; "
        "|seed| <= 2**53 - 1, as every integer answered, so that JavaScript reads it exactly",
    )
    temperature: float | None = Field(
        None,
        ge=0.001,
        le=100,
        strict=True,
        allow_inf_nan=False,
        description=f"sampling temperature (null: the model's, from its kronos.json; else {TEMPERATURE:g})",
    )
    top_k: StrictInt = Field(0, ge=0, description="keep the k most likely tokens (0: off)")
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description=f"nucleus sampling threshold (null: the model's, from its kronos.json; else {TOP_P:g})",
    )
    repair_ohlc: bool = Field(True, description="set each sampled high/low to the max/min of its bar")
    freq: str | None = Field(
        None,
        max_length=32,
        description="spacing of the future bars, a pandas frequency such as 5min, h, D or B "
        "(default: inferred from the bars, as `kronos forecast` does)",
    )
    return_paths: bool = Field(False, description="also return every sampled path (raw, before repair)")
    calibrate: bool = Field(
        False,
        description="calibrate each series' bands on its own bars (all sent, not only the lookback), as "
        "`kronos forecast --calibrate` does: needs about lookback + 10 x steps bars (20 past forecasts)",
    )

    @field_validator("quantile_levels", mode="before")
    @classmethod
    def _split_levels(cls, value: Any) -> Any:
        """'0.1,0.5,0.9' (as a form field or query sends it) as a list of numbers."""
        if isinstance(value, str):
            try:
                return json.loads(f"[{value}]")
            except ValueError:
                return value
        return value


class ForecastRequest(ForecastOptions):
    bars: list[Bar] = Field(description="the history, oldest bar first, timestamps strictly increasing")


class SeriesInput(Strict):
    id: SeriesId | None = Field(None, description="names the series; default: its position")
    bars: list[Bar]


class BatchRequest(ForecastOptions):
    series: list[SeriesInput] = Field(min_length=1)


class CalibrationSummary(BaseModel):
    """What a calibration was fitted on and what it does, as means over the steps."""

    past_forecasts: int = Field(description="past forecasts of the series' own bars it was fitted on")
    lookback: int = Field(description="bars of history each past forecast saw")
    move_kept: float = Field(description="mean share of the model's median move kept (shrink)")
    spread_weight: float = Field(
        description="mean weight of the model's spread against the history's random-walk volatility"
    )


class Forecast(BaseModel):
    """One series' forecast. Per field (open, high, low, close, volume, amount) and step: the
    mean, the median and each quantile; per step: P(close above the last close) and the expected
    realised volatility, beside what the history's own volatility would give."""

    id: SeriesId | None = None
    timestamps: list[str]
    spacing: str = Field(description="how the future timestamps are spaced, in words")
    last_close: float
    history_bars: int = Field(description="bars of history the model was given (the last ones sent)")
    quantiles: dict[str, dict[str, list[float | None]]]
    median: dict[str, list[float | None]]
    mean: dict[str, list[float | None]]
    prob_up: list[float] = Field(description="per step, the share of paths whose close is above last_close")
    expected_volatility: list[float | None] = Field(
        description="per step h, the mean over paths of sqrt(r_1^2 + ... + r_h^2), r the log close returns"
    )
    historical_volatility: list[float | None] = Field(
        description="per step h, sqrt(h) x the history's realised volatility per bar"
    )
    ohlc_violation_rate: float = Field(description="share of raw sampled bars with high/low out of order")
    calibrated: bool = Field(False, description="whether the paths, bands and P(up) are calibrated")
    calibration: CalibrationSummary | None = None
    paths: dict[str, list[list[float | None]]] | None = None


class ForecastResponse(Forecast):
    model: str
    steps: int
    paths_sampled: int
    seed: int | None
    batch_series: int = Field(description="series in the generation call this forecast shared")


class BatchResponse(BaseModel):
    model: str
    steps: int
    paths_sampled: int
    seed: int | None
    forecasts: list[Forecast]


class BarsResponse(BaseModel):
    name: str
    columns: list[str] = Field(description="the feature columns the file had; the others were filled in")
    bars: list[dict[str, Any]]


class ErrorDetail(BaseModel):
    field: str | None = None
    row: int | None = None
    message: str


class ErrorBody(BaseModel):
    status: int
    type: str
    message: str
    field: str | None = None
    row: int | None = None
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


@dataclass(frozen=True)
class Limits:
    """Caps on the work one request may ask for; each refusal names its cap and the flag that sets it."""

    max_bars: int = 10_000
    max_steps: int = 256
    max_paths: int = 256
    max_series: int = 64
    max_past_forecasts: int = 1000  # calibration's past forecasts per request, over all its series
    max_body_bytes: int = 16 * 2**20

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
