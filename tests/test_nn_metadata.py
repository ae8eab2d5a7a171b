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


def test_sampling_defaults_are_read_checked_and_written(tmp_path):
    from kronos.nn.metadata import SamplingDefaults, read_metadata

    values = {"max_context": 64, "sampling": {"temperature": 0.8, "top_p": 1.0}}
    loaded = ModelMetadata.from_dict(values, "kronos.json")
    assert loaded.sampling == SamplingDefaults(temperature=0.8, top_p=1.0) and loaded.extra == {}
    loaded.write(tmp_path)
    again = read_metadata("x", tmp_path)
    assert again == loaded and again.to_dict()["sampling"] == {"temperature": 0.8, "top_p": 1.0}
    only = ModelMetadata.from_dict({"sampling": {"top_p": 0.95}}, "kronos.json")
    assert only.sampling == SamplingDefaults(top_p=0.95) and only.to_dict()["sampling"] == {"top_p": 0.95}
    assert ModelMetadata.from_dict({}, "kronos.json").sampling is None
    assert "sampling" not in ModelMetadata().to_dict()  # files without it are written as before


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ({"top_p": 0}, "'sampling.top_p' must be a number in \\(0, 1\\], got 0"),
        ({"top_p": 1.5}, "'sampling.top_p' must be a number in \\(0, 1\\], got 1.5"),
        ({"top_p": True}, "'sampling.top_p' must be a number in \\(0, 1\\], got True"),
        ({"temperature": -1}, "'sampling.temperature' must be a positive finite number, got -1"),
        ({"temperature": float("inf")}, "'sampling.temperature' must be a positive finite number, got inf"),
        ({"temperature": "1"}, "'sampling.temperature' must be a positive finite number, got '1'"),
        ({"paths": 50}, "'sampling' must be an object with keys among \\['temperature', 'top_p'\\]"),
        ([0.9], "'sampling' must be an object with keys among"),
    ],
)
def test_bad_sampling_defaults_are_refused_naming_the_key(sampling, message):
    with pytest.raises(ValueError, match="^kronos.json: " + message):
        ModelMetadata.from_dict({"sampling": sampling}, "kronos.json")


def test_anchor_is_read_checked_and_written_only_when_set(tmp_path):
    from kronos.nn.metadata import read_metadata

    loaded = ModelMetadata.from_dict({"max_context": 64, "anchor": True}, "kronos.json")
    assert loaded.anchor is True and loaded.extra == {}
    loaded.write(tmp_path)
    assert read_metadata("x", tmp_path) == loaded
    assert ModelMetadata.from_dict({}, "kronos.json").anchor is False
    assert "anchor" not in ModelMetadata().to_dict()  # files without it are written as before
    with pytest.raises(ValueError, match="^kronos.json: 'anchor' must be true or false, got 'yes'"):
        ModelMetadata.from_dict({"anchor": "yes"}, "kronos.json")


def test_center_is_read_checked_and_written_only_when_set(tmp_path):
    from kronos.nn.metadata import read_metadata

    loaded = ModelMetadata.from_dict({"max_context": 64, "anchor": True, "center": True}, "kronos.json")
    assert (loaded.anchor, loaded.center, loaded.extra) == (True, True, {})
    loaded.write(tmp_path)
    assert read_metadata("x", tmp_path) == loaded
    assert ModelMetadata.from_dict({}, "kronos.json").center is False
    assert "center" not in ModelMetadata().to_dict()
    with pytest.raises(ValueError, match="^kronos.json: 'center' must be true or false, got '1'"):
        ModelMetadata.from_dict({"center": 1}, "kronos.json")
