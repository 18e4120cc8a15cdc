"""Backbone registry: ``MODEL.BACKBONE.NAME`` names a builder ``fn(cfg) -> Cell``."""
from fastreid_ms.utils.registry import Registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """Registry for backbones: a registered function takes the config and returns a Cell."""


def build_backbone(cfg):
    """Build the backbone named by ``cfg.MODEL.BACKBONE.NAME``."""
    return BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
