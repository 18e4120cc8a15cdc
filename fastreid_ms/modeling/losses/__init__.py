"""Loss functions of FastReID and ACL-DGReID (pure MindSpore functional code, differentiable with
``mindspore.grad`` / ``value_and_grad`` in PyNative mode and compilable inside ``mindspore.jit`` with int Tensor
labels), the Baseline loss compositions, and the host-side ``check_*`` batch validators to run before them."""
from .center_loss import centerLoss, check_center_labels
from .circle_loss import pairwise_circleloss
from .cluster_loss import check_cluster_domains, interCluster, intraCluster
from .composition import (ACL_PHASES, REID_LOSS_NAMES, acl_cls_accuracy, acl_loss_names, acl_losses,
                          acl_regularizers, check_acl_batch, check_reid_batch, loss_kwargs_from_cfg, reid_loss_names,
                          reid_losses)
from .cosface_loss import pairwise_cosface
from .cross_entroy_loss import (check_cross_entropy_labels, cross_entropy_loss, cross_entropy_per_sample, log_accuracy,
                                masked_cross_entropy_loss)
from .domain_sct_loss import check_domain_sct_domains, domain_SCT_loss
from .focal_loss import check_focal_targets, focal_loss
from .triplet_loss import triplet_loss
from .triplet_loss_meta import check_triplet_meta_rows, triplet_loss_Meta
from .utils import (check_class_labels, cosine_dist, cosine_sim, euclidean_dist, l2_normalize, label_array, label_tensor,
                    normalize)

__all__ = [
    "cross_entropy_loss", "cross_entropy_per_sample", "masked_cross_entropy_loss", "log_accuracy", "triplet_loss",
    "triplet_loss_Meta", "domain_SCT_loss", "intraCluster", "interCluster", "centerLoss", "pairwise_circleloss",
    "pairwise_cosface", "focal_loss",
    "euclidean_dist", "cosine_dist", "cosine_sim", "normalize", "l2_normalize", "label_array", "label_tensor",
    "acl_losses", "acl_regularizers", "reid_losses", "acl_loss_names", "reid_loss_names", "loss_kwargs_from_cfg",
    "acl_cls_accuracy", "ACL_PHASES", "REID_LOSS_NAMES",
    "check_acl_batch", "check_reid_batch", "check_class_labels", "check_cross_entropy_labels", "check_center_labels",
    "check_cluster_domains", "check_domain_sct_domains", "check_focal_targets", "check_triplet_meta_rows",
]
