"""Shared fixtures: the upstream compatibility checkpoints in tests/fixtures/compat (see its README),
bars on disk for training, and the `kronos` command in this process and as a server.

The session-wide model and tokenizer are shared by every test: no test may change them in place
(cast, train, load weights into or hook them); a test that needs to change a model copies it
(copy.deepcopy) or loads its own."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

COMPAT_TINY = Path(__file__).resolve().parent / "fixtures" / "compat" / "tiny"

# Property-based tests (test_properties.py): a bounded number of examples per property, so that the
# suite stays fast in CI, no deadline (a forecast's time varies with the machine's load), and a
# derandomised run, so CI sees the same examples every time. HYPOTHESIS_PROFILE=thorough searches wider.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", parent=settings.get_profile("ci"), max_examples=1000, derandomize=False, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    if not COMPAT_TINY.is_dir():
        pytest.fail(f"compatibility fixtures not found at {COMPAT_TINY}")
    return COMPAT_TINY


@pytest.fixture(scope="session")
def tiny_cases(tiny_dir) -> dict:
    return json.loads((tiny_dir / "cases.json").read_text())


@pytest.fixture(scope="session")
def tiny_expected(tiny_dir) -> dict[str, np.ndarray]:
    with np.load(tiny_dir / "expected.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def tiny_ohlcv(tiny_dir) -> pd.DataFrame:
    return pd.read_csv(tiny_dir / "ohlcv.csv", parse_dates=["timestamps"])


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    from kronos import Kronos

    return Kronos.from_pretrained(tiny_dir / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir):
    from kronos import KronosTokenizer

    return KronosTokenizer.from_pretrained(tiny_dir / "tokenizer")


@pytest.fixture
def tiny_predictor(tiny_model, tiny_tokenizer):
    from kronos import KronosPredictor

    return KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)


@pytest.fixture
def csv_files(tmp_path) -> list[Path]:
    """Two files of 300 hourly bars each, for training."""
    from helpers import make_bars

    paths = []
    for i in range(2):
        path = tmp_path / f"sym{i}.csv"
        make_bars(300, seed=i).to_csv(path, index=False)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def kronos_command():
    """Run `kronos ARGS` in this process as on a terminal, warnings printed to stderr (as Python
    prints them outside a test): returns (exit status, stdout, stderr lines)."""
    from kronos.commands.main import main

    def print_warning(message, category, filename, lineno, file=None, line=None) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    def run(*args: str) -> tuple[int, str, list[str]]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = print_warning
            status = main(list(args))
        return status, out.getvalue(), err.getvalue().splitlines()

    return run


@pytest.fixture(scope="session")
def kronos_server(tmp_path_factory):
    """`kronos serve` in a process of its own on 127.0.0.1 and a free port, with the shipped model,
    an API key and the small caps of tests/kronos_server.py."""
    from kronos_server import API_KEY, TEST_ARGS, start_server

    server = start_server(tmp_path_factory.mktemp("serve"), TEST_ARGS, API_KEY)
    yield server
    server.stop()
