"""kronos.mcpserver.tools in this process: a progress callback that raises stops generation at
that step (how a cancelled call stops), and a calibrated forecast counts its steps without going back."""

from __future__ import annotations

from pathlib import Path

import pytest

from kronos.forecasting.predictor import KronosPredictor
from kronos.mcpserver.tools import Toolbox, ToolInputError, ToolSettings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def toolbox() -> Toolbox:
    return Toolbox(KronosPredictor.from_pretrained(), ToolSettings.at(EXAMPLES))


def test_raising_from_progress_stops_generation_at_that_step(toolbox):
    seen = []

    def progress(done, total, message) -> None:
        seen.append(done)
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        toolbox.forecast(file="sp500_daily.csv", steps=50, paths=4, progress=progress)
    assert seen == [1, 2, 3]


def test_calibrated_progress_never_goes_back(toolbox):
    seen = []
    answer = toolbox.forecast(
        file="sp500_daily.csv",
        steps=2,
        paths=2,
        calibrate=True,
        progress=lambda d, t, m: seen.append((d, t, m)),
    )
    assert answer["calibrated"] and answer["calibration"]["past_forecasts"] >= 20
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1]
    assert seen[0][2].startswith("calibrating") and seen[-1][2] == "forecasting: step 2 of 2"


def test_root_and_models(toolbox, tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        ToolSettings.at(tmp_path / "nothing")
    with pytest.raises(ToolInputError, match="is outside the folder"):
        toolbox.evaluate(file="/etc/hostname", steps=2)
    with pytest.raises(ToolInputError, match="origins must be a positive number, got 0"):
        toolbox.evaluate(file="sp500_daily.csv", steps=2, origins=0)
    listed = toolbox.models()
    assert listed["models"][0] | {"metadata": None} == {
        "name": "kronos-default", "source": "served", "max_context": 128, "lookback": 108,
        "frequencies": ["5min", "D", "h", "min"], "metadata": None,
    }  # fmt: skip
