"""Models: backbones, heads, losses and meta-architectures (``build_model(cfg)``), and the compiled passes that run
them (:mod:`fastreid_ms.modeling.passes`)."""
from .backbones import BACKBONE_REGISTRY, build_backbone  # noqa: F401
from .heads import REID_HEADS_REGISTRY, build_heads  # noqa: F401
from .meta_arch import META_ARCH_REGISTRY, build_model  # noqa: F401

__all__ = ["build_model", "build_backbone", "build_heads", "META_ARCH_REGISTRY", "BACKBONE_REGISTRY",
           "REID_HEADS_REGISTRY"]
