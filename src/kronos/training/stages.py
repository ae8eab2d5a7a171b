"""The two training stages: what each builds, and the loss it minimises."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kronos.forecasting.pretrained import resolve_checkpoint, tokenizer_reference
from kronos.forecasting.schedules import bar_spacing
from kronos.forecasting.series import Series
from kronos.nn.metadata import ModelMetadata, SamplingDefaults
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer
from kronos.training.config import Config


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper, or the module itself."""
    inner = getattr(module, "module", module)
    return inner if isinstance(inner, nn.Module) else module


def causal_eval(model: nn.Module) -> nn.Module:
    """Eval mode, except that the dependency-aware layer stays causal.

    Its cross-attention is causal only in training mode; in eval mode a teacher-forced pass would
    let position t see the s1 tokens after t, and the s2 loss would look better than it is.
    That layer has no dropout, so training mode changes nothing else there.
    """
    model.eval()
    base = unwrap(model)
    assert isinstance(base, Kronos)
    base.dep_layer.train()
    return model


class TokenizerStage:
    """Reconstruction from the full code and from the s1 bits alone, plus the BSQ loss.

    loss = mse(z_pre, x) + mse(z, x) + bsq_loss, with z_pre decoded from the s1 half only.
    """

    name = "tokenizer"
    eval_mode = staticmethod(nn.Module.eval)
    loss_parts = ("recon_s1", "recon_full", "bsq")

    def __init__(self, config: Config, device: torch.device):
        self.config = config
        self.device = device

    def build(self, series: list[Series]) -> nn.Module:
        cfg = self.config.tokenizer
        if cfg.pretrained:
            module = KronosTokenizer.from_pretrained(resolve_checkpoint(cfg.pretrained, "tokenizer"))
        else:
            module = KronosTokenizer.from_config(cfg.network())
        return module.to(self.device)

    def loss(self, module: nn.Module, x: torch.Tensor, stamp: torch.Tensor):
        (z_pre, z), bsq_loss, _, _ = module(x)
        recon_s1, recon_full = F.mse_loss(z_pre, x), F.mse_loss(z, x)
        loss = recon_s1 + recon_full + bsq_loss
        return loss, {"recon_s1": recon_s1, "recon_full": recon_full, "bsq": bsq_loss}


class PredictorStage:
    """Next-(s1, s2) cross-entropy with teacher forcing, on tokens from a frozen tokenizer."""

    name = "predictor"
    eval_mode = staticmethod(causal_eval)
    loss_parts = ("ce_s1", "ce_s2")

    def __init__(self, config: Config, device: torch.device):
        self.config = config
        self.device = device
        self.tokenizer_source = self.find_tokenizer()
        self.tokenizer = KronosTokenizer.from_pretrained(self.tokenizer_source).to(device).eval()
        self.tokenizer.requires_grad_(False)

    def find_tokenizer(self) -> str:
        cfg = self.config
        if cfg.model.tokenizer:
            return resolve_checkpoint(cfg.model.tokenizer, "tokenizer")
        trained = Path(cfg.train_for("tokenizer").out_dir) / "best"
        if (trained / "config.json").is_file():
            return str(trained)
        if cfg.tokenizer.pretrained:
            return resolve_checkpoint(cfg.tokenizer.pretrained, "tokenizer")
        if cfg.model.pretrained:
            return resolve_checkpoint(cfg.model.pretrained, "tokenizer")
        raise ValueError(
            "the predictor stage needs a tokenizer: set model.tokenizer (or tokenizer.pretrained) to a "
            f"checkpoint, or train one first with the tokenizer stage (looked in {trained})"
        )

    def build(self, series: list[Series]) -> nn.Module:
        """A new or pretrained model, with the metadata of the data it is trained on (kronos.json)."""
        cfg = self.config.model
        if cfg.pretrained:
            module = Kronos.from_pretrained(resolve_checkpoint(cfg.pretrained, "model"))
        else:
            module = Kronos.from_config(cfg.network(self.tokenizer.s1_bits, self.tokenizer.s2_bits))
        data = self.config.data
        context = max(data.window, module.metadata.max_context if module.metadata else 0)
        module.metadata = ModelMetadata(
            max_context=context,
            history=data.history_len(),
            frequencies=tuple(sorted({bar_spacing(one.timestamps) for one in series} - {""})),
            tokenizer=tokenizer_reference(self.tokenizer_source),
            sampling=SamplingDefaults(self.config.sampling.temperature, self.config.sampling.top_p),
            anchor=self.config.forecast.anchor,
            center=self.config.forecast.center,
            extra={"series": len(series), "bars": int(sum(len(one) for one in series))},
        )
        if (module.s1_bits, module.s2_bits) != (self.tokenizer.s1_bits, self.tokenizer.s2_bits):
            raise ValueError(
                f"the model predicts {module.s1_bits}+{module.s2_bits}-bit tokens but tokenizer "
                f"{self.tokenizer_source} makes {self.tokenizer.s1_bits}+{self.tokenizer.s2_bits}-bit tokens"
            )
        return module.to(self.device)

    def loss(self, module: nn.Module, x: torch.Tensor, stamp: torch.Tensor):
        with torch.no_grad():
            s1, s2 = self.tokenizer.encode(x, half=True)
        s1_logits, s2_logits = module(
            s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:]
        )
        base = unwrap(module)
        assert isinstance(base, Kronos)
        head = base.head
        loss, ce_s1, ce_s2 = head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])
        return loss, {"ce_s1": ce_s1, "ce_s2": ce_s2}


def make_stage(stage: str, config: Config, device: torch.device):
    stages = {"tokenizer": TokenizerStage, "predictor": PredictorStage}
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}; stages are {sorted(stages)}")
    return stages[stage](config, device)
