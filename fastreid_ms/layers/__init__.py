"""FastReID's layers for MindSpore: pooling, margin softmaxes, norms, attention blocks, init and the CPU-aware conv."""
from .any_softmax import ArcSoftmax, CircleSoftmax, CosSoftmax, Linear  # noqa: F401
from .pooling import *  # noqa: F401,F403
