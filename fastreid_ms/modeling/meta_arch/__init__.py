"""Meta-architectures: the registry and every registered model (importing this package registers them)."""
from .build import META_ARCH_REGISTRY, build_model  # noqa: F401
from .baseline import Baseline  # noqa: F401
from .mgn import MGN  # noqa: F401
