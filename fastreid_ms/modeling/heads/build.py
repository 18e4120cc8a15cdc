"""Re-ID head registry: ``MODEL.HEADS.NAME`` names a head class built from the config."""
from fastreid_ms.utils.registry import Registry

REID_HEADS_REGISTRY = Registry("HEADS")
REID_HEADS_REGISTRY.__doc__ = """Registry for re-id heads: a registered class is called with the config."""


def build_heads(cfg):
    """Build the head named by ``cfg.MODEL.HEADS.NAME``."""
    return REID_HEADS_REGISTRY.get(cfg.MODEL.HEADS.NAME)(cfg)
