"""Kronos, the foundation model for financial candlesticks."""

from .generation import auto_regressive_inference, sample_from_logits, top_k_top_p_filtering
from .model import Kronos
from .predictor import KronosPredictor
from .tokenizer import KronosTokenizer

__all__ = [
    "Kronos",
    "KronosPredictor",
    "KronosTokenizer",
    "auto_regressive_inference",
    "sample_from_logits",
    "top_k_top_p_filtering",
]
__version__ = "0.1.0"
