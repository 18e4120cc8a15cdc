"""Models: Meta* ops, backbones, heads, losses and meta-architectures (``build_model(cfg)``)."""
from .backbones import BACKBONE_REGISTRY, build_backbone  # noqa: F401
from .heads import REID_HEADS_REGISTRY, build_heads  # noqa: F401
from .meta_arch import META_ARCH_REGISTRY, build_model  # noqa: F401
from .ops import MetaOpt, meta_step_sizes, opt_setting  # noqa: F401

__all__ = ["build_model", "build_backbone", "build_heads", "META_ARCH_REGISTRY", "BACKBONE_REGISTRY",
           "REID_HEADS_REGISTRY", "MetaOpt", "opt_setting", "meta_step_sizes"]
