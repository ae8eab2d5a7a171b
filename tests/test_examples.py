"""The examples run offline as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_forecast_tiny_example_prints_a_forecast():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "forecast_tiny.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["open", "high", "low", "close", "volume", "amount"]
    rows = [line for line in lines[2:] if line.startswith("2024-03-05")]
    assert len(rows) == 12
    assert all(len(row.split()) == 8 for row in rows)
