"""Loss functions of FastReID and ACL-DGReID (pure MindSpore functional code, differentiable with
``mindspore.grad`` / ``value_and_grad`` in PyNative mode) and the Baseline loss compositions."""
from .center_loss import centerLoss
from .circle_loss import pairwise_circleloss
from .cluster_loss import interCluster, intraCluster
from .composition import (ACL_OPT_TYPES, REID_LOSS_NAMES, acl_cls_accuracy, acl_losses, acl_opt_type,
                          acl_regularizers, loss_kwargs_from_cfg, reid_losses)
from .cosface_loss import pairwise_cosface
from .cross_entroy_loss import cross_entropy_loss, log_accuracy
from .domain_sct_loss import domain_SCT_loss
from .focal_loss import focal_loss
from .triplet_loss import triplet_loss
from .triplet_loss_meta import triplet_loss_Meta
from .utils import cosine_dist, cosine_sim, euclidean_dist, l2_normalize, normalize

__all__ = [
    "cross_entropy_loss", "log_accuracy", "triplet_loss", "triplet_loss_Meta", "domain_SCT_loss", "intraCluster",
    "interCluster", "centerLoss", "pairwise_circleloss", "pairwise_cosface", "focal_loss",
    "euclidean_dist", "cosine_dist", "cosine_sim", "normalize", "l2_normalize",
    "acl_losses", "acl_regularizers", "reid_losses", "loss_kwargs_from_cfg", "acl_cls_accuracy", "acl_opt_type",
    "ACL_OPT_TYPES", "REID_LOSS_NAMES",
]
