"""kronos.nn.metadata: kronos.json files are checked."""

from __future__ import annotations

import pytest
import torch

from kronos.nn.metadata import ModelMetadata

torch.set_num_threads(1)


def test_metadata_files_are_checked(tmp_path):
    with pytest.raises(ValueError, match="'history' must be a positive integer"):
        ModelMetadata.from_dict({"max_context": 64, "history": -3}, "kronos.json")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        ModelMetadata.from_dict([64], "kronos.json")  # type: ignore[arg-type]


def test_metadata_values_are_range_checked_and_the_file_bounded(tmp_path):
    from kronos.nn.metadata import MAX_CONTEXT, read_metadata

    with pytest.raises(
        ValueError, match="'max_context' must be a positive integer of at most 16,384 bars, got 100000000"
    ):
        ModelMetadata.from_dict({"max_context": 100_000_000}, "kronos.json")
    assert ModelMetadata.from_dict({"max_context": MAX_CONTEXT}, "kronos.json").max_context == MAX_CONTEXT
    with pytest.raises(ValueError, match=r"'history' \(200\) is longer than 'max_context' \(128\)"):
        ModelMetadata.from_dict({"max_context": 128, "history": 200}, "kronos.json")
    with pytest.raises(ValueError, match="'frequencies' must be a list of at most 1,000 bar spacings"):
        ModelMetadata.from_dict({"frequencies": ["1D"] * 1001}, "kronos.json")
    with pytest.raises(ValueError, match="'tokenizer' must be a directory or Hub id"):
        ModelMetadata.from_dict({"tokenizer": 3}, "kronos.json")
    path = tmp_path / "kronos.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(
        ValueError, match="kronos.json is not a model's metadata: its JSON is nested too deeply"
    ):
        read_metadata("x", tmp_path)
    path.write_text('{"max_context": 64, "pad": "' + "x" * 1_000_001 + '"}')
    with pytest.raises(ValueError, match="kronos.json is 1,000,0[0-9]{2} bytes, not a model's metadata"):
        read_metadata("x", tmp_path)
    path.write_text('{"max_context": 64, "history": 48, "tokenizer": "../tok"}')
    loaded = read_metadata("x", tmp_path)
    assert loaded is not None and (loaded.max_context, loaded.history, loaded.tokenizer) == (64, 48, "../tok")
    assert loaded.to_dict() == {"max_context": 64, "history": 48, "frequencies": [], "tokenizer": "../tok"}
