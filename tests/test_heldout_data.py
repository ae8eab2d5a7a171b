"""The held-out series in benchmarks/data/heldout/ load as bars and are what their README says."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kronos.forecasting.tables import load_series

HELDOUT = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "heldout"
SPACING = {
    "1 day": pd.Timedelta(days=1),
    "1 hour": pd.Timedelta(hours=1),
    "30 minutes": pd.Timedelta(minutes=30),
    "1 minute": pd.Timedelta(minutes=1),
}


def readme_rows() -> list[list[str]]:
    """The rows of the README's file table: file, bars, period, spacing, source, licence."""
    lines = (HELDOUT / "README.md").read_text().splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    return [row for row in rows if row[0].endswith(".csv")]


def test_readme_lists_every_file():
    assert sorted(row[0] for row in readme_rows()) == sorted(p.name for p in HELDOUT.glob("*.csv"))


@pytest.mark.parametrize("row", readme_rows(), ids=lambda row: row[0])
def test_file_matches_its_readme_row(row):
    name, bars, period, spacing = row[:4]
    (series,) = load_series([HELDOUT / name])
    assert len(series.timestamps) == int(bars)
    first, last = (pd.Timestamp(t) for t in period.split(" .. "))
    assert series.timestamps[0] == first and series.timestamps[-1] == last
    gap = pd.Series(series.timestamps).diff().dropna().mode().iloc[0]
    assert gap == SPACING[spacing.split(" (")[0].split(",")[0]]
    assert (series.bars[:, :4] > 0).all()
