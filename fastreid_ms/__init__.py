"""fastreid_ms: FastReID person re-identification on MindSpore, with the ACL-DGReID dynamic-router ResNet (DR50)."""

__version__ = "0.1.0"
