"""Forecast 12 five-minute bars offline with the upstream-made tiny checkpoints in tests/fixtures/compat/tiny.

Run from the repository root:  python examples/forecast_tiny.py
The tiny checkpoints hold random weights: the numbers show the API working, not a useful forecast.
"""

from pathlib import Path

import pandas as pd

from kronos import Kronos, KronosPredictor, KronosTokenizer

TINY = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "compat" / "tiny"


def main() -> None:
    tokenizer = KronosTokenizer.from_pretrained(TINY / "tokenizer")
    model = Kronos.from_pretrained(TINY / "model")
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=64)

    bars = pd.read_csv(TINY / "ohlcv.csv", parse_dates=["timestamps"])
    history, future = bars.iloc[:60], bars.iloc[60:72]
    forecast = predictor.predict(
        history[["open", "high", "low", "close", "volume", "amount"]],
        x_timestamp=history["timestamps"],
        y_timestamp=future["timestamps"],
        pred_len=len(future),
        T=1.0,
        top_p=0.9,
        sample_count=5,
        verbose=False,
    )
    print(forecast.round(4).to_string())


if __name__ == "__main__":
    main()
