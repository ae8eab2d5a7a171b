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


def test_cross_section_example_ranks_the_real_universe(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cross_section_sp500.py"), str(tmp_path / "report")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == [
        "rank_ic_mean",
        "rank_ic_t",
        "ic_mean",
        "turnover",
        "long_short_return_net",
        "long_short_sharpe_net",
    ]
    methods = [line.split()[0] for line in lines[2:-1]]
    assert methods == ["kronos", "kronos_median", "kronos_p_up", "kronos_return_over_vol"] + [
        "momentum_5", "momentum_20", "reversal_1", "low_vol_20", "random",
    ]  # fmt: skip
    assert (tmp_path / "report" / "cross_section.csv").is_file() and lines[-1].startswith("report:")
