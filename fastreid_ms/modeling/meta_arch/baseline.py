"""``Baseline``: pixel normalisation -> backbone -> head -> losses (FastReID's meta-architecture, extended by
ACL-DGReID for the dynamic-router backbone and the meta-learning opt).

``construct(batched_inputs, opt=None)``; ``batched_inputs`` is a dict with "images" (float32 NCHW in 0..255, numpy
or Tensor) and, for training, "targets" (int64 global person ids) and "domainids" (int64). A bare image array is
accepted in eval mode.

* eval mode: the head's feature (N, D);
* train mode: the loss dict. With a :class:`MetaEmbeddingHead` (ACL-DGReID) the backbone must return
  ``(x, paths, side_features)`` and the dict is ``acl_losses`` (by ``opt.type``: basic / mtrain / mtest; ``opt``
  None counts as basic, with 'hold' BN) followed by ``loss_domain_intra``, ``loss_domain_inter`` and, for basic and
  mtest, ``loss_Center`` (x 5e-4 / x 1e-3). With any other head (upstream FastReID) it is FastReID's composition by
  MODEL.LOSSES.NAME (``reid_losses``), and ``opt`` must be None.

Unlike the reference, the images are normalised into a new tensor: the caller's batch is never modified.
"""
import numpy as np
from mindspore import Tensor, nn
from mindspore import dtype as mstype

from fastreid_ms.config import configurable
from fastreid_ms.modeling.backbones import build_backbone
from fastreid_ms.modeling.heads import MetaEmbeddingHead, build_heads
from fastreid_ms.modeling.losses import acl_losses, acl_regularizers, loss_kwargs_from_cfg, reid_losses
from .build import META_ARCH_REGISTRY

__all__ = ["Baseline"]



def _as_tensor(value, dtype, key):
    if isinstance(value, Tensor):
        return value if value.dtype == dtype else value.astype(dtype)
    try:
        return Tensor(np.asarray(value), dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"batched_inputs[{key!r}] must be a numpy array or Tensor, got {type(value).__name__}") from e


@META_ARCH_REGISTRY.register()
class Baseline(nn.Cell):
    """See the module docstring."""

    @configurable
    def __init__(self, *, backbone, heads, pixel_mean, pixel_std, loss_kwargs=None):
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.loss_kwargs = loss_kwargs
        mean = np.asarray(pixel_mean, dtype=np.float32).reshape(-1)
        std = np.asarray(pixel_std, dtype=np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"MODEL.PIXEL_MEAN {list(pixel_mean)} and MODEL.PIXEL_STD {list(pixel_std)} differ in "
                             f"length")
        # Constants, not Parameters: not saved, like the reference's non-persistent buffers.
        self.pixel_mean = Tensor(mean)
        self.pixel_std = Tensor(std)
        self._mean_nchw = Tensor(mean.reshape(1, -1, 1, 1))
        self._std_nchw = Tensor(std.reshape(1, -1, 1, 1))

    @classmethod
    def from_config(cls, cfg):
        return {
            "backbone": build_backbone(cfg),
            "heads": build_heads(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_kwargs": loss_kwargs_from_cfg(cfg),
        }

    @property
    def is_meta(self):
        """True for the ACL-DGReID head (per-domain classifiers, meta-learning losses)."""
        return isinstance(self.heads, MetaEmbeddingHead)

    def preprocess_image(self, batched_inputs):
        """``(images - pixel_mean) / pixel_std`` (per channel) as a new tensor."""
        if isinstance(batched_inputs, dict):
            if "images" not in batched_inputs:
                raise KeyError(f"batched_inputs has no 'images' (keys: {sorted(batched_inputs)})")
            images = batched_inputs["images"]
        else:
            images = batched_inputs
        images = _as_tensor(images, mstype.float32, "images")
        if images.ndim != 4 or images.shape[1] != self.pixel_mean.shape[0]:
            raise ValueError(f"batched_inputs['images'] must be (N, {self.pixel_mean.shape[0]}, H, W), got shape "
                             f"{tuple(images.shape)}")
        # exactly the reference's (x - mean) / std: a multiply by 1/std rounds differently, and the train-mode
        # network amplifies that enough to move the meta-test losses of train_iter.npz past the fixture tolerance
        return (images - self._mean_nchw) / self._std_nchw

    def construct(self, batched_inputs, opt=None, return_outputs=False):
        """Eval: features. Train: the loss dict, or ``(loss_dict, outputs)`` with ``return_outputs`` (the head's
        training outputs plus ``"paths"``, the routing weights, for logging / inspection)."""
        images = self.preprocess_image(batched_inputs)
        if opt is not None and opt.meta and opt.fast_grads:
            self._check_fast_grad_names(opt.fast_grads)
        if self.is_meta:
            backbone_out = self.backbone(images, opt)
            if not (isinstance(backbone_out, tuple) and len(backbone_out) == 3):
                raise TypeError("MetaEmbeddingHead needs a backbone returning (features, paths, side_features) "
                                "(build_meta_dynamic_router_resnet_backbone)")
            features, paths, _ = backbone_out
        else:
            if opt is not None:
                raise ValueError("opt (meta-learning) needs MODEL.HEADS.NAME MetaEmbeddingHead and the dynamic-router "
                                 "backbone")
            features = self.backbone(images)
            paths = None
        if not self.training:
            return self.heads(features)

        if not isinstance(batched_inputs, dict) or "targets" not in batched_inputs:
            raise KeyError("training needs batched_inputs['targets'] (person ids)")
        targets = _as_tensor(batched_inputs["targets"], mstype.int64, "targets")
        if self.is_meta:
            if "domainids" not in batched_inputs:
                raise KeyError("training the ACL-DGReID Baseline needs batched_inputs['domainids']")
            domainids = _as_tensor(batched_inputs["domainids"], mstype.int64, "domainids")
            outputs = self.heads(features, targets, opt)
            losses = self.losses(outputs, targets, domainids, paths, opt)
            outputs["paths"] = paths
        else:
            outputs = self.heads(features, targets)
            losses = self.losses(outputs, targets)
        return (losses, outputs) if return_outputs else losses

    def _check_fast_grad_names(self, fast_grads):
        """Fast gradients are looked up by ``Parameter.name``; a key naming no trainable parameter of this model
        (e.g. names taken without the prefix a wrapping Cell adds to ``Parameter.name``) would silently leave the
        slow weights in place, so it is an error."""
        unknown = set(fast_grads) - {p.name for p in self.trainable_params()}
        if unknown:
            raise KeyError(f"opt.fast_grads has {len(unknown)} key(s) that name no trainable parameter of the model, "
                           f"e.g. {sorted(unknown)[:3]}; key fast gradients by Parameter.name (p.name for p in "
                           f"model.trainable_params())")

    def losses(self, outputs, gt_labels, domain_labels=None, paths=None, opt=None):
        """The loss dict (see the module docstring) from the head's training outputs."""
        if not self.is_meta:
            return reid_losses(outputs, gt_labels, self.loss_kwargs)
        losses = acl_losses(outputs, gt_labels, domain_labels, opt, self.heads.num_classes, self.loss_kwargs)
        losses.update(acl_regularizers(paths, domain_labels, outputs["center_distmat"], gt_labels, opt,
                                       self.loss_kwargs))
        return losses
