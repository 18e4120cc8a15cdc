"""Optimizers (PyTorch semantics, fused in-place updates of the model's Parameters) and learning-rate schedulers."""
from .build import build_lr_scheduler, build_optimizer, get_default_optimizer_params, is_norm_cell, warmup_iterations
from .lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, WarmupLR
from .optim import SGD, Adam, AdamW, GradientClipper, Optimizer, StickyGradMask

__all__ = ["build_optimizer", "build_lr_scheduler", "get_default_optimizer_params", "is_norm_cell", "Optimizer",
           "SGD", "Adam", "AdamW", "GradientClipper", "StickyGradMask", "LRScheduler", "WarmupLR",
           "MultiStepLR", "CosineAnnealingLR", "warmup_iterations"]
