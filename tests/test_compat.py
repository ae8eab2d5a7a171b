"""Reproduce every case of the upstream compatibility fixture: token ids exactly, floats to rtol 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

RTOL = 1e-4


@pytest.fixture(params=["cached", "plain"])
def engine(request, monkeypatch):
    """Forecasts by the engine ("cached"), or by the plain loop, the test oracle ("plain")."""
    if request.param == "plain":
        from reference_generation import plain_decode_tokens, plain_generate_tokens

        import kronos.forecasting.core as core

        def plain(*args, threads=None, **kwargs):  # the plain loop runs on torch's thread count
            return plain_generate_tokens(*args, **kwargs)

        monkeypatch.setattr(core, "generate_tokens", plain)
        monkeypatch.setattr(core, "decode_tokens", plain_decode_tokens)
    return request.param


def assert_matches(name: str, got, expected: dict) -> None:
    want = expected[name]
    got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * 1e-2 * scale, err_msg=name)


@pytest.fixture(scope="module")
def window(tiny_expected):
    return torch.tensor(tiny_expected["window_norm"])[None], torch.tensor(tiny_expected["window_stamp"])[None]


def test_configs_load_unchanged(tiny_cases, tiny_model, tiny_tokenizer):
    assert tiny_model._hub_mixin_config == tiny_cases["model_config"]
    assert tiny_tokenizer._hub_mixin_config == tiny_cases["tokenizer_config"]
    assert not tiny_model.training and not tiny_tokenizer.training


@torch.no_grad()
def test_tokenizer_cases(tiny_tokenizer, tiny_expected, window):
    x, _ = window
    s1, s2 = tiny_tokenizer.encode(x, half=True)
    assert_matches("encode_s1", s1, tiny_expected)
    assert_matches("encode_s2", s2, tiny_expected)
    full = tiny_tokenizer.encode(x, half=False)
    assert_matches("encode_full", full, tiny_expected)
    assert_matches("decode_half", tiny_tokenizer.decode([s1, s2], half=True), tiny_expected)
    assert_matches("decode_full", tiny_tokenizer.decode(full, half=False), tiny_expected)
    (z_pre, z), bsq_loss, quantized, _ = tiny_tokenizer(x)
    assert_matches("forward_z_pre", z_pre, tiny_expected)
    assert_matches("forward_z", z, tiny_expected)
    assert_matches("forward_quantized", quantized, tiny_expected)
    assert_matches("forward_bsq_loss", bsq_loss, tiny_expected)


@torch.no_grad()
def test_model_cases(tiny_model, tiny_expected, window):
    _, stamp = window
    s1 = torch.tensor(tiny_expected["encode_s1"])
    s2 = torch.tensor(tiny_expected["encode_s2"])
    logits, context = tiny_model.decode_s1(s1, s2, stamp)
    assert_matches("decode_s1_logits", logits, tiny_expected)
    assert_matches("decode_s1_context", context, tiny_expected)
    s2_logits = tiny_model.decode_s2(context, torch.tensor(tiny_expected["decode_s2_next"]))
    assert_matches("decode_s2_logits", s2_logits, tiny_expected)
    tf_s1, tf_s2 = tiny_model(
        s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:]
    )
    assert_matches("teacher_forced_s1_logits", tf_s1, tiny_expected)
    assert_matches("teacher_forced_s2_logits", tf_s2, tiny_expected)
    ce = tiny_model.head.compute_loss(tf_s1, tf_s2, s1[:, 1:], s2[:, 1:])
    assert_matches("teacher_forced_ce", torch.stack(ce), tiny_expected)


COLUMN_VARIANTS = {
    "": ["open", "high", "low", "close", "volume", "amount"],
    "_prices_only": ["open", "high", "low", "close"],
    "_no_amount": ["open", "high", "low", "close", "volume"],
}


def predict_cases(cases):
    return [c for c in cases["cases"] if c.get("call") == "predict"]


@pytest.mark.parametrize("suffix", list(COLUMN_VARIANTS), ids=["all", "prices_only", "no_amount"])
def test_predict_cases(tiny_cases, tiny_expected, tiny_ohlcv, tiny_predictor, engine, suffix):
    for case in predict_cases(tiny_cases):
        start, stop = case["rows"]
        n = case["pred_len"]
        assert tiny_predictor.max_context == case["max_context"]
        out = tiny_predictor.predict(
            tiny_ohlcv.iloc[start:stop][COLUMN_VARIANTS[suffix]],
            tiny_ohlcv["timestamps"].iloc[start:stop],
            tiny_ohlcv["timestamps"].iloc[stop : stop + n],
            pred_len=n,
            T=case["T"],
            top_k=case["top_k"],
            top_p=case["top_p"],
            sample_count=case["sample_count"],
            verbose=False,
        )
        assert list(out.columns) == COLUMN_VARIANTS[""]
        assert list(out.index) == list(tiny_ohlcv["timestamps"].iloc[stop : stop + n])
        assert_matches(case["name"] + suffix, out.to_numpy(), tiny_expected)


def test_predict_batch_case(tiny_cases, tiny_expected, tiny_ohlcv, tiny_predictor, engine):
    (case,) = [c for c in tiny_cases["cases"] if c.get("call") == "predict_batch"]
    rows, n = case["series_rows"], case["pred_len"]
    ts = tiny_ohlcv["timestamps"]
    outs = tiny_predictor.predict_batch(
        [tiny_ohlcv.iloc[a:b] for a, b in rows],
        [ts.iloc[a:b] for a, b in rows],
        [ts.iloc[b : b + n] for _, b in rows],
        pred_len=n,
        T=case["T"],
        top_k=case["top_k"],
        top_p=case["top_p"],
        sample_count=case["sample_count"],
        verbose=False,
    )
    assert_matches("predict_batch", np.stack([o.to_numpy() for o in outs]), tiny_expected)


def test_timestamps_as_datetimeindex(tiny_ohlcv, tiny_predictor, tiny_expected):
    import pandas as pd

    ts = pd.DatetimeIndex(tiny_ohlcv["timestamps"])
    out = tiny_predictor.predict(
        tiny_ohlcv.iloc[:48], ts[:48], ts[48:60], pred_len=12, top_k=1, top_p=1.0, verbose=False
    )
    assert_matches("predict_48_12", out.to_numpy(), tiny_expected)
