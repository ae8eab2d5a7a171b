"""The README runs as written: its Python code blocks, and the `kronos` commands of its two quick
starts, with the shipped model, offline.

What is not run, and why: the set-up steps of the quick starts (`python3 -m venv`, `. activate`,
`pip install`: CI's own set-up, `.ci/run`, does them), `python -m pytest` (the suite this test is
part of), the Commands section (a synopsis: `[--model NAME|DIR|HUB_ID]`, `prices.csv` stand for
the reader's own), the evaluation command (scripts/evaluate_heldout.py, an hour of CPU) and the
Serve section (a server and curl; tests/test_serve_app.py and tests/test_commands_serve.py run them).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETUP_STEPS = ("python3 -m venv ", ". .venv/bin/activate", "pip install ", "python -m pytest")


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def quick_start(title: str) -> list[str]:
    """The `&&`-joined steps of the bash block under the bold `title`."""
    found = re.search(rf"\*\*{re.escape(title)}\*\*.*?```bash\n(.*?)```", README, re.S)
    assert found, f"the README has no quick start {title!r}"
    return [step.strip() for line in found[1].splitlines() for step in line.split("&&") if step.strip()]


def test_the_quick_starts_run_and_write_what_the_readme_says(tmp_path):
    forecast_steps = quick_start("Set up and forecast")
    test_steps = quick_start("Set up and run the tests")
    commands = [step for step in forecast_steps + test_steps if not step.startswith(SETUP_STEPS)]
    assert commands == [
        "kronos forecast examples/sp500_daily.csv --steps 20 --out forecast.csv --plot forecast.png"
    ], "a quick-start step is neither set-up nor run here: run it in this test"
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the README's paths, from a clone's root
    kronos = [sys.executable, "-c", "import sys; from kronos.commands.main import main; sys.exit(main())"]
    for command in commands:
        argv = shlex.split(command)
        done = subprocess.run(
            [*kronos, *argv[1:]], cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    forecast = pd.read_csv(tmp_path / "forecast.csv", parse_dates=["timestamps"])
    assert len(forecast) == 20
    # "per future bar, the mean and quantiles of every column (default levels: the median and the
    # 50/80/95% bands), the probability that the close ends above the last close, and the expected
    # realised volatility"
    for column in ("open", "high", "low", "close", "volume", "amount"):
        assert {
            f"{column}_mean",
            *(f"{column}_q{q}" for q in ("0.025", "0.1", "0.25", "0.5", "0.75", "0.9", "0.975")),
        } <= set(forecast)
    assert forecast["prob_close_above_last"].between(0, 1).all() and (forecast["realized_vol"] > 0).all()
    assert (tmp_path / "forecast.png").read_bytes()[:4] == b"\x89PNG"


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
# what each block must leave behind, checked in the same process after it ran
BLOCK_CHECKS = {
    "predictor.calibrate": """
assert "max_context=128, history=108" in repr(predictor.metadata)
assert (predictor.max_context, predictor.lookback) == (128, 108)
assert bands.shape[0] == 20 and bands.index[0] > df["timestamps"].iloc[-1]
assert paths.shape == (50, 20, 6)
assert sorted(table["symbol"].unique()) == ["EURUSD", "SPX"] and len(table) == 40
assert calibration.origins >= 20
assert (bands["close_q0.9"] >= bands["close_q0.1"]).all()
print("README block checked")
""",
}


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))])
def test_the_python_code_blocks_run(block):
    checks = [code for marker, code in BLOCK_CHECKS.items() if marker in block]
    assert checks, "a README Python block without checks here: say what it must produce"
    done = subprocess.run(
        [sys.executable, "-c", block + "\n" + "\n".join(checks)],
        cwd=ROOT, env=offline_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "README block checked" in done.stdout
