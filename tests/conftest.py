"""Shared fixtures: the upstream compatibility checkpoints in tests/fixtures/compat (see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

COMPAT_TINY = Path(__file__).resolve().parent / "fixtures" / "compat" / "tiny"


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


@pytest.fixture(scope="session")
def kronos_server(tmp_path_factory):
    """`kronos serve` in a process of its own on 127.0.0.1 and a free port, with the shipped model,
    an API key and the small caps of tests/kronos_server.py."""
    from kronos_server import API_KEY, TEST_ARGS, start_server

    server = start_server(tmp_path_factory.mktemp("serve"), TEST_ARGS, API_KEY)
    yield server
    server.stop()
