"""fastreid_ms: FastReID person re-identification on MindSpore, with the ACL-DGReID dynamic-router ResNet (DR50).

Importing the package caps oneDNN's instruction set on AVX-512 CPUs before any MindSpore operator runs
(:mod:`fastreid_ms.utils.onednn`); a user's own ``ONEDNN_MAX_CPU_ISA`` wins.
"""
from .utils.onednn import cap_onednn_isa

cap_onednn_isa()

__version__ = "0.1.0"
