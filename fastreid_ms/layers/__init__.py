"""FastReID's layers for MindSpore: pooling, margin softmaxes, norms, attention blocks, init and the CPU-aware conv."""
from .pooling import *  # noqa: F401,F403
