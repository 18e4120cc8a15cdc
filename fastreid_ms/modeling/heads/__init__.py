"""Re-ID heads: the registry and every registered head (importing this package registers them)."""
from .build import REID_HEADS_REGISTRY, build_heads  # noqa: F401
from .embedding_head import EmbeddingHead  # noqa: F401
from .meta_embedding_head import MetaEmbeddingHead  # noqa: F401
