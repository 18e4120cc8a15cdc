"""Meta-architecture registry: ``MODEL.META_ARCHITECTURE`` names the whole-model class."""
from fastreid_ms.utils.registry import Registry

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """Registry for meta-architectures (whole models) built from the config."""


def build_model(cfg):
    """Build the model named by ``cfg.MODEL.META_ARCHITECTURE`` (in eval mode, like a fresh MindSpore Cell; call
    ``model.set_train(True)`` for training)."""
    return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
