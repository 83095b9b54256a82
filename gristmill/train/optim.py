"""AdamW parameter groups and the learning-rate schedule (a pure function of the step)."""

from __future__ import annotations

import math

import torch
from torch import nn

from gristmill.train.config import TrainConfig


def param_groups(model: nn.Module, decay_embeddings: bool, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices decay; norms, biases (and embeddings unless asked) do not.

    Tied parameters appear once (``named_parameters`` deduplicates them).
    """
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_embedding = id(p) in embedding_params
        (decay if p.dim() >= 2 and (decay_embeddings or not is_embedding) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay) with the fused kernel on CUDA."""
    o = config.optim
    groups = param_groups(model, o.decay_embeddings, o.weight_decay)
    kwargs = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr_at(0, config), betas=(o.beta1, o.beta2), eps=o.eps, **kwargs)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    Linear warmup from lr/warmup to lr over ``warmup_steps``; then ``cosine``: half a cosine
    down to ``lr * min_lr_ratio`` at the last step; ``wsd``: constant until the last
    ``decay_frac`` of the steps, then linear down to the minimum; ``constant``: flat.
    """
    peak, floor = config.optim.lr, config.optim.lr * config.optim.min_lr_ratio
    warmup, total = config.warmup_steps, config.max_steps
    if step < warmup:
        return peak * (step + 1) / warmup
    kind = config.schedule.kind
    if kind == "constant":
        return peak
    if kind == "cosine":
        span = max(1, total - 1 - warmup)
        progress = min(1.0, (step - warmup) / span)
        return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))
    decay_steps = max(1, round(config.schedule.decay_frac * (total - warmup)))
    decay_start = total - decay_steps
    if step < decay_start:
        return peak
    progress = min(1.0, (step - decay_start + 1) / decay_steps)
    return peak + (floor - peak) * progress


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
