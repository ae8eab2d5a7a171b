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
