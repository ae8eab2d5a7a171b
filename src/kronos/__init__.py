"""Kronos, the foundation model for financial candlesticks."""

from kronos.engine.sampling import Sampling, sample_from_logits, top_k_top_p_filtering
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import load_pretrained
from kronos.forecasting.tables import TableOptions
from kronos.forecasting.upstream import auto_regressive_inference
from kronos.nn.config import ModelConfig, TokenizerConfig
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer
from kronos.version import __version__

__all__ = [
    "__version__",
    "Kronos",
    "KronosPredictor",
    "KronosTokenizer",
    "ModelConfig",
    "Sampling",
    "TableOptions",
    "TokenizerConfig",
    "auto_regressive_inference",
    "load_pretrained",
    "sample_from_logits",
    "top_k_top_p_filtering",
]
