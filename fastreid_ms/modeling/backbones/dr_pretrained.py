"""ImageNet IBN-a ResNet weights -> dynamic-router ResNet (the reference builder's weight surgery).

:func:`dr_pretrained_state` is pure numpy: it maps a ResNet-IBN-a state dict (``conv1``, ``bn1``,
``layer{1-4}.{i}.*`` with ``bn1.IN.* / bn1.BN.*`` in stages 1-3, ``fc.*``) onto the DR model's state, key by key in
the model's order:

1. a key the checkpoint also has: copied (a larger checkpoint tensor is sliced to the model's shape, as the reference
   does; never the case for R50);
2. ``adaptorS_base.<suffix>`` <- ``layerS.<last>.<suffix>`` when it exists with the same shape, where ``<last>`` is
   the checkpoint block that the DR stage lacks (the DR stage has one block fewer). So the IN affine parameters
   take the BN ones; ``adaptor{1,2,3}_base.bn1`` stays at its init (the source is an IBN norm with IN./BN. keys);
3. ``adaptorS_sub.<suffix>`` (the grouped experts) <- ``layerS.<last>.<suffix>``, in this order: conv3: the source
   averaged over consecutive groups of K input channels, then tiled K times along the output channels; bn3: tiled
   K times (``torch.repeat``); stage 4 bn1 (a plain BN in the checkpoint): ``IN.*`` <- the first half of
   ``bn1.weight/bias``, ``BN.*`` <- the second half of ``bn1.weight/bias/running_mean/running_var``; same shape:
   copied; otherwise (conv2) averaged over groups of K input channels;
4. everything else (routers, invariant/specific norms, gates, SE, map norms) keeps its initial value.

``num_batches_tracked`` entries are ignored on both sides (the reference's ``repeat`` of that counter breaks loading
on current PyTorch; the BN momentum is fixed, so the counter is meaningless).
"""
import logging
import re
from typing import Dict, Mapping, Tuple

import numpy as np

from fastreid_ms.utils.pretrained import read_pretrained
from fastreid_ms.utils.state_dict import load_torch_state_dict

logger = logging.getLogger(__name__)

__all__ = ["dr_pretrained_state", "dr_pretrained_tensors", "load_dr_pretrained", "avgpool_cin"]

_STAGE_KEY = re.compile(r"^layer(\d)\.(\d+)\.")
_ADAPTOR_KEY = re.compile(r"^adaptor(\d)_(base|sub)\.(.+)$")


def avgpool_cin(weight: np.ndarray, k: int) -> np.ndarray:
    """``W'[o, j] = mean(W[o, k*j : k*j + k])`` over INPUT channels (the reference's ``F.avg_pool1d`` with kernel
    and stride ``k`` on ``W.permute(0, 2, 3, 1)``), summed left to right in the weight's precision and divided by
    ``k``, as PyTorch's CPU kernel does (bitwise equal results)."""
    cout, cin = weight.shape[:2]
    if cin % k:
        raise ValueError(f"avgpool_cin: {cin} input channels are not divisible by {k}")
    groups = weight.reshape(cout, cin // k, k, *weight.shape[2:])
    total = groups[:, :, 0].copy()
    for i in range(1, k):
        total += groups[:, :, i]
    return total / weight.dtype.type(k)


def _last_blocks(model_state: Mapping[str, np.ndarray]) -> Dict[int, int]:
    """Checkpoint index of the block each DR stage lacks = the number of blocks the DR stage has."""
    counts: Dict[int, set] = {}
    for name in model_state:
        m = _STAGE_KEY.match(name)
        if m:
            counts.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return {stage: len(blocks) for stage, blocks in counts.items()}


def _fits(value: np.ndarray, shape) -> bool:
    return value.ndim == len(shape) and all(v >= s for v, s in zip(value.shape, shape))


def dr_pretrained_state(model_state: Mapping[str, np.ndarray], ckpt: Mapping[str, np.ndarray],
                        num_experts: int = 4) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Apply the surgery (module docstring). Returns ``(state, sources)``: the full new state (every model key; the
    ones not loaded keep ``model_state``'s value) and, for each loaded key, a description of where its value came
    from (``"copy layer1.2.conv1.weight"``, ``"tile4(avgpool4_cin(layer1.2.conv3.weight))"``, ...)."""
    k = num_experts
    ckpt = {name: np.asarray(v) for name, v in ckpt.items() if not name.endswith("num_batches_tracked")}
    last = _last_blocks(model_state)
    state, sources = {}, {}

    def load(name, value, source):
        state[name] = np.ascontiguousarray(value, dtype=model_state[name].dtype)
        sources[name] = source

    for name, init in model_state.items():
        state[name] = init
        if name.endswith("num_batches_tracked"):
            continue
        shape = tuple(init.shape)
        if name in ckpt:
            value = ckpt[name]
            if tuple(value.shape) == shape:
                load(name, value, f"copy {name}")
            elif _fits(value, shape):
                load(name, value[tuple(slice(0, s) for s in shape)], f"slice {name}")
            continue
        m = _ADAPTOR_KEY.match(name)
        if m is None:
            continue
        stage, kind, suffix = int(m.group(1)), m.group(2), m.group(3)
        if stage not in last:
            continue
        prefix = f"layer{stage}.{last[stage]}."
        src = prefix + suffix
        if kind == "base":
            if src in ckpt and tuple(ckpt[src].shape) == shape:
                load(name, ckpt[src], f"copy {src}")
            continue
        if "conv3" in suffix:
            if src in ckpt:
                pooled = avgpool_cin(ckpt[src], k)
                value = np.tile(pooled, (k,) + (1,) * (pooled.ndim - 1))
                if value.shape == shape:
                    load(name, value, f"tile{k}(avgpool{k}_cin({src}))")
        elif "bn3" in suffix:
            if src in ckpt and ckpt[src].shape[0] * k == shape[0]:
                load(name, np.tile(ckpt[src], k), f"tile{k}({src})")
        elif stage == 4 and suffix.startswith("bn1."):
            part, leaf = suffix.split(".")[1:3]
            src = prefix + "bn1." + leaf
            if src in ckpt and part in ("IN", "BN"):
                half = ckpt[src].shape[0] - shape[0] if part == "BN" else shape[0]
                if part == "IN":
                    load(name, ckpt[src][:half], f"{src}[:{half}]")
                else:
                    load(name, ckpt[src][half:], f"{src}[{half}:]")
        elif src in ckpt and tuple(ckpt[src].shape) == shape:
            load(name, ckpt[src], f"copy {src}")
        elif src in ckpt and ckpt[src].ndim == 4:
            value = avgpool_cin(ckpt[src], k)
            if value.shape == shape:
                load(name, value, f"avgpool{k}_cin({src})")
    return state, sources


def dr_pretrained_tensors(model, ckpt: Mapping[str, np.ndarray], num_experts: int = 4) -> Dict[str, np.ndarray]:
    """The tensors of the DR ``model`` that :func:`dr_pretrained_state` fills from the ResNet(-IBN-a) state dict
    ``ckpt`` (name -> array, the model's names); the other tensors keep their initial values."""
    model_state = {name: p.asnumpy() for name, p in model.parameters_and_names()}
    state, sources = dr_pretrained_state(model_state, ckpt, num_experts)
    return {name: state[name] for name in sources}


def load_dr_pretrained(model, path: str, depth: str = "50x", with_ibn: bool = True, num_experts: int = 4):
    """Load ImageNet weights into the DR ``model``: a PyTorch ResNet(-IBN-a) ``.pth`` (e.g.
    resnet50_ibn_a-d9d0bb7b.pth for DEPTH 50x with WITH_IBN) through :func:`dr_pretrained_tensors`, or a ``.ckpt``
    that tools/convert_pretrained.py wrote from one (the same tensors, already mapped). Returns the loaded names."""
    if not path:
        name = f"resnet{depth[:-1]}_ibn_a-d9d0bb7b.pth" if (with_ibn and depth == "50x") else \
            f"the ImageNet resnet{depth[:-1]}{'_ibn_a' if with_ibn else ''} weights"
        raise ValueError(f"MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: download "
                         f"{name} and set MODEL.BACKBONE.PRETRAIN_PATH to it (or set MODEL.BACKBONE.PRETRAIN False)")
    ckpt, converted = read_pretrained(path)
    tensors = ckpt if converted else dr_pretrained_tensors(model, ckpt, num_experts)
    incompatible = load_torch_state_dict(model, tensors, source=path)
    if incompatible.unexpected_keys:
        raise ValueError(f"MODEL.BACKBONE.PRETRAIN_PATH {path!r} holds tensors this backbone does not have: "
                         f"{', '.join(incompatible.unexpected_keys[:5])} (converted for another MODEL.BACKBONE?)")
    logger.info("Loaded %d of %d tensors from %s (adaptor surgery included); %d keep their initial value: %s",
                len(tensors), len(tensors) + len(incompatible.missing_keys), path, len(incompatible.missing_keys),
                ", ".join(incompatible.missing_keys))
    return list(tensors)
