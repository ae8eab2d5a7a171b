"""Kronos, the foundation model for financial candlesticks."""

from kronos.engine.sampling import sample_from_logits, top_k_top_p_filtering
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.upstream import auto_regressive_inference
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer

__all__ = [
    "Kronos",
    "KronosPredictor",
    "KronosTokenizer",
    "auto_regressive_inference",
    "sample_from_logits",
    "top_k_top_p_filtering",
]
__version__ = "0.1.0"
