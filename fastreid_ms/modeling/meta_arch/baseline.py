"""``Baseline``: pixel normalisation -> backbone -> head -> losses (FastReID's meta-architecture, extended by
ACL-DGReID for the dynamic-router backbone and its meta-learning passes).

``construct(images, targets=None, domainids=None, phase="basic", update_stats=None)`` takes Tensors: ``images``
float32 (N, 3, H, W) in 0..255, ``targets`` int64 global person ids and ``domainids`` int64 source-domain ids (both
for training only). It compiles under ``mindspore.jit``; :mod:`fastreid_ms.modeling.passes` turns batch dicts into
these Tensors (validating them outside the graph) and runs the compiled passes.

* eval mode: the head's feature (N, D);
* train mode: the loss dict. ``phase`` is the forward mode of the ACL-DGReID meta-learning schedule, a compile-time
  constant: 'basic' (the ordinary step), 'mtrain' (meta-train) or 'mtest' (meta-test); it selects the loss
  composition and, unless ``update_stats`` says otherwise, whether batch norms update their running statistics
  (only 'basic' does). With a :class:`MetaEmbeddingHead` (one classifier per source domain, any number of domains;
  every per-domain loss term runs over the head's domain ids) the dict is ``acl_losses`` followed by
  ``loss_domain_intra``, ``loss_domain_inter`` and, for 'basic' and 'mtest', ``loss_Center`` (x 5e-4 / x 1e-3).
  With any other head (upstream FastReID) it is FastReID's composition by MODEL.LOSSES.NAME and ``phase`` must be
  'basic'. :meth:`loss_names` gives the keys of a phase without running anything.

Unlike the reference, the images are normalised into a new tensor: the caller's batch is never modified.
"""
from mindspore import nn

from fastreid_ms.config import configurable
from fastreid_ms.modeling.backbones import build_backbone
from fastreid_ms.modeling.heads import MetaEmbeddingHead, build_heads
from fastreid_ms.modeling.losses import (ACL_PHASES, acl_loss_names, acl_losses, acl_regularizers,
                                         check_acl_batch, check_reid_batch, loss_kwargs_from_cfg, reid_loss_names,
                                         reid_losses)
from .build import META_ARCH_REGISTRY
from .pixel_norm import pixel_constants

__all__ = ["Baseline"]


@META_ARCH_REGISTRY.register()
class Baseline(nn.Cell):
    """See the module docstring."""

    @configurable
    def __init__(self, *, backbone, heads, pixel_mean, pixel_std, loss_kwargs=None):
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.loss_kwargs = loss_kwargs
        self.is_meta = isinstance(heads, MetaEmbeddingHead)
        self.num_channels, self.pixel_mean, self.pixel_std = pixel_constants(pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg):
        return {
            "backbone": build_backbone(cfg),
            "heads": build_heads(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_kwargs": loss_kwargs_from_cfg(cfg),
        }

    def phases(self):
        """The forward modes this model trains with: ('basic', 'mtrain', 'mtest') for the ACL-DGReID head, else
        ('basic',)."""
        return tuple(ACL_PHASES) if self.is_meta else ("basic",)

    def loss_names(self, phase="basic"):
        """The keys of the training loss dict of ``phase``, in order."""
        if phase not in self.phases():
            raise ValueError(f"phase={phase!r}: this model trains with phases {self.phases()}")
        if self.is_meta:
            return tuple(acl_loss_names(phase, self.loss_kwargs))
        return tuple(reid_loss_names(self.loss_kwargs))

    def check_labels(self, targets, domainids=None, phase="basic"):
        """Host-side check of a training batch's labels (numpy int arrays) for ``phase``: everything the compiled
        losses need (ids in the classifiers' ranges, positives and negatives for the meta triplet terms, known
        domain ids); raises ValueError naming the rows or labels at fault."""
        if self.is_meta:
            check_acl_batch(targets, domainids, phase, self.heads.num_classes)
        else:
            check_reid_batch(targets, self.heads.num_classes, self.loss_kwargs)

    def preprocess_image(self, images):
        """``(images - pixel_mean) / pixel_std`` (per channel) as a new tensor; exactly the reference's expression
        (a multiply by 1/std rounds differently, which the train-mode network amplifies)."""
        return (images - self.pixel_mean) / self.pixel_std

    def construct(self, images, targets=None, domainids=None, phase="basic", update_stats=None,
                  return_outputs=False):
        """See the module docstring; with ``return_outputs`` training returns ``(loss dict, outputs)``, the head's
        training outputs plus ``"paths"`` (the routing weights, ACL-DGReID head), for inspection."""
        if update_stats is None:
            update_stats = phase == "basic"
        x = self.preprocess_image(images)
        if self.is_meta:
            features, paths, _ = self.backbone(x, update_stats)
        else:
            features = self.backbone(x, update_stats)
            paths = None
        if not self.training:
            return self.heads(features)
        outputs = self.heads(features, targets, update_stats)
        losses = self.losses(outputs, targets, domainids, paths, phase)
        if not return_outputs:
            return losses
        if self.is_meta:
            outputs["paths"] = paths
        return losses, outputs

    def losses(self, outputs, gt_labels, domain_labels=None, paths=None, phase="basic"):
        """The loss dict (see the module docstring) from the head's training outputs."""
        if not self.is_meta:
            return reid_losses(outputs, gt_labels, self.loss_kwargs)
        losses = acl_losses(outputs, gt_labels, domain_labels, phase, self.heads.num_classes, self.loss_kwargs)
        losses.update(acl_regularizers(paths, domain_labels, outputs["center_distmat"], gt_labels, phase,
                                       self.loss_kwargs, num_domains=self.heads.num_domains))
        return losses
