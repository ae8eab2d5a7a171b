"""Checkpoint loading through huggingface_hub's PyTorchModelHubMixin, with clear errors.

The mixin writes and reads `config.json` + `model.safetensors`, the upstream format. This adds
what a user needs when loading fails: which model, which file, what to do instead.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from huggingface_hub import PyTorchModelHubMixin
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError

from .pretrained import resolve_checkpoint

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class KronosHubMixin(PyTorchModelHubMixin):
    """PyTorchModelHubMixin whose `from_pretrained` checks its inputs and loads strictly.

    `checkpoint_part` names the subdirectory ("model" or "tokenizer") a shipped model or a
    directory of both holds this class's checkpoint in.
    """

    checkpoint_part = "model"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, strict: bool = True, **kwargs):
        """Load from a local checkpoint directory or a Hugging Face Hub repo id.

        `pretrained_model_name_or_path` may also name a shipped model ('kronos-default') or a
        directory holding `model/` and `tokenizer/`. Raises FileNotFoundError when the directory or
        hub repo lacks a file, and ValueError when the weights do not fit the configuration.
        `strict=True` also rejects missing or extra keys.
        """
        name = resolve_checkpoint(str(pretrained_model_name_or_path), cls.checkpoint_part)
        if os.path.isdir(name):
            for required in (CONFIG_NAME, WEIGHTS_NAME):
                if not os.path.isfile(os.path.join(name, required)):
                    raise FileNotFoundError(
                        f"{cls.__name__} checkpoint directory {name!r} has no {required}; a checkpoint "
                        f"directory holds {CONFIG_NAME} and {WEIGHTS_NAME} as written by save_pretrained()"
                    )
        elif os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") != 1:
            raise FileNotFoundError(
                f"{cls.__name__}: {name!r} is neither a checkpoint directory nor a Hugging Face Hub id "
                f"of the form 'owner/name'"
            )
        try:
            # The mixin prints "Loading weights from local directory"; keep stdout for the user's output.
            with contextlib.redirect_stdout(io.StringIO()):
                loaded = super().from_pretrained(name, strict=strict, **kwargs)
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            if os.path.isdir(name):
                raise
            raise FileNotFoundError(
                f"could not load {cls.__name__} {name!r}: it is not in the local Hugging Face cache "
                f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) and the Hub could not be "
                f"reached ({type(err).__name__}). Download it once with network access, or load a local "
                f"directory instead: {cls.__name__}.from_pretrained('/path/to/dir') with {CONFIG_NAME} "
                f"and {WEIGHTS_NAME} in it."
            ) from err
        except TypeError as err:
            raise ValueError(
                f"{cls.__name__} {name!r}: {CONFIG_NAME} does not fit the constructor: {err}"
            ) from err
        except SafetensorError as err:
            raise ValueError(
                f"{cls.__name__} {name!r}: {WEIGHTS_NAME} is not a readable safetensors file: {err}"
            ) from err
        except RuntimeError as err:
            raise ValueError(
                f"{cls.__name__} {name!r}: the weights in {WEIGHTS_NAME} do not fit {CONFIG_NAME}: {err}"
            ) from err
        return loaded
