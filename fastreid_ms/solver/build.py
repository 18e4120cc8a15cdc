"""Optimizer and LR-scheduler construction from the config (FastReID / ACL-DGReID ``solver/build.py``)."""
import logging
import math
import re
from typing import Any, Dict, List, Optional, Tuple

from . import lr_scheduler
from .optim import SGD, Adam, AdamW, GradientClipper, Optimizer

logger = logging.getLogger(__name__)

__all__ = ["build_optimizer", "build_lr_scheduler", "get_default_optimizer_params", "is_norm_cell",
           "warmup_iterations"]

_OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
_NORM_NAME = re.compile(r"Norm|BN")


def is_norm_cell(cell) -> bool:
    """Whether ``cell`` is a normalisation layer (its parameters get ``SOLVER.WEIGHT_DECAY_NORM``).

    Convention: a Cell class sets ``is_norm = True`` (or False to opt out); otherwise a class name containing
    "Norm" or "BN" counts (MindSpore's ``BatchNorm2d``/``LayerNorm``/``GroupNorm``/``InstanceNorm2d``, fastreid_ms's
    ``MetaBNNorm``/``MetaINNorm``/``MetaIBNNorm``). PyTorch's rule is ``isinstance`` of its BatchNorm, GroupNorm,
    InstanceNorm, LayerNorm and LocalResponseNorm classes.
    """
    flag = getattr(type(cell), "is_norm", None)
    if flag is not None:
        return bool(flag)
    return bool(_NORM_NAME.search(type(cell).__name__))


def get_default_optimizer_params(model, base_lr: Optional[float] = None, weight_decay: Optional[float] = None,
                                 weight_decay_norm: Optional[float] = None, bias_lr_factor: Optional[float] = 1.0,
                                 heads_lr_factor: Optional[float] = 1.0, weight_decay_bias: Optional[float] = None,
                                 overrides: Optional[Dict[str, Dict[str, float]]] = None,
                                 freeze_layers: Optional[List[str]] = None, flag: Optional[str] = None,
                                 fix_adaptor_sub_lr: bool = False) -> List[Dict[str, Any]]:
    """One param group per trainable Parameter, in ``model.cells_and_names()`` order, each parameter once.

    Walks every cell's own Parameters (``parameters_and_names(expand=False)``), skips ``requires_grad=False`` ones
    and duplicates (by identity: the groups hold the model's real Parameters). Hyper-parameters, as in the
    reference: ``lr = base_lr``, ``weight_decay``; norm cells (:func:`is_norm_cell`) get ``weight_decay_norm``; a
    parameter named ``bias`` gets ``weight_decay_bias`` and ``base_lr * bias_lr_factor`` (the bias override wins over
    the norm rule); cells under the top-level ``heads`` get ``lr * heads_lr_factor``; the ACL-DGReID rule "cell name
    contains 'adaptor_sub' -> lr x 0.5" is kept literally - it never matches the DR50 cells, which are named
    ``adaptor{1..4}_sub``; ``fix_adaptor_sub_lr=True`` (config
    ``SOLVER.FIX_ADAPTOR_SUB_LR``) applies it to them instead.

    ``freeze_status`` is "freeze" for parameters whose full name ``<cell name>.<param name>`` matches (``re.match``)
    one of ``freeze_layers``, and, with ``flag='meta'``, for every parameter outside a ``router`` cell or inside a
    ``fc_classifier`` cell. The tags only take effect through the freeze wrapper (``SOLVER.FREEZE_ITERS > 0`` with a
    non-empty ``MODEL.FREEZE_LAYERS``); otherwise - the DR50 configuration - the meta optimizer updates every
    parameter.
    """
    overrides = dict(overrides or {})
    defaults: Dict[str, Any] = {}
    if base_lr is not None:
        defaults["lr"] = base_lr
    if weight_decay is not None:
        defaults["weight_decay"] = weight_decay
    bias_overrides = {}
    if bias_lr_factor is not None and bias_lr_factor != 1.0:
        if base_lr is None:
            raise ValueError("bias_lr_factor requires base_lr")
        bias_overrides["lr"] = base_lr * bias_lr_factor
    if weight_decay_bias is not None:
        bias_overrides["weight_decay"] = weight_decay_bias
    if bias_overrides:
        if "bias" in overrides:
            raise ValueError("Conflicting overrides for 'bias'")
        overrides["bias"] = bias_overrides
    patterns = [re.compile(name) for name in (freeze_layers or [])]
    adaptor_sub = re.compile(r"adaptor\d*_sub") if fix_adaptor_sub_lr else None

    groups: List[Dict[str, Any]] = []
    seen = set()
    for cell_name, cell in model.cells_and_names():
        norm = is_norm_cell(cell)
        for param_path, param in cell.parameters_and_names(expand=False):
            local_name = param_path.rsplit(".", 1)[-1]
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            hyper = dict(defaults)
            if norm and weight_decay_norm is not None:
                hyper["weight_decay"] = weight_decay_norm
            hyper.update(overrides.get(local_name, {}))
            if cell_name.split(".")[0] == "heads" and heads_lr_factor is not None and heads_lr_factor != 1.0:
                hyper["lr"] = hyper.get("lr", base_lr) * heads_lr_factor
            matches_adaptor_sub = (adaptor_sub.search(cell_name) is not None) if adaptor_sub else \
                ("adaptor_sub" in cell_name)
            if matches_adaptor_sub:
                hyper["lr"] = hyper.get("lr", base_lr) * 0.5
            full_name = cell_name + "." + local_name
            freeze_status = "normal"
            if any(p.match(full_name) is not None for p in patterns):
                freeze_status = "freeze"
            if flag == "meta" and ("router" not in cell_name or "fc_classifier" in cell_name):
                freeze_status = "freeze"
            groups.append({"freeze_status": freeze_status, "params": [param], "name": full_name.lstrip("."),
                           **hyper})
    return groups


def build_optimizer(cfg, model, flag: Optional[str] = None) -> Tuple[Optimizer, List[Dict[str, Any]]]:
    """``(optimizer, param_groups)`` as the reference builds them (``flag='meta'``: the meta-learning optimizer).

    ``SOLVER.OPT`` in {SGD, Adam, AdamW}. SGD uses ``SOLVER.MOMENTUM``/``NESTEROV`` (the meta optimizer: momentum 0,
    no nesterov); Adam/AdamW use PyTorch's default betas/eps. ``SOLVER.CLIP_GRADIENTS`` installs per-parameter
    clipping; ``MODEL.FREEZE_LAYERS`` with ``SOLVER.FREEZE_ITERS > 0`` installs the freeze wrapper (gradients of the
    "freeze" groups ignored for the first FREEZE_ITERS steps). The groups hold the model's own Parameters;
    ``optimizer.parameters`` is the ``weights`` list for ``mindspore.value_and_grad``. The update is one compiled
    call per step unless ``MODEL.COMPILE`` is False.
    """
    solver = cfg.SOLVER
    opt_name = solver.OPT
    if opt_name not in _OPTIMIZERS:
        raise ValueError(f"SOLVER.OPT={opt_name!r} is not supported; expected one of {sorted(_OPTIMIZERS)}")
    if flag not in (None, "meta"):
        raise ValueError(f"build_optimizer: flag={flag!r}, expected None or 'meta'")
    freeze_layers = list(cfg.MODEL.FREEZE_LAYERS) if solver.FREEZE_ITERS > 0 else []
    params = get_default_optimizer_params(
        model, base_lr=solver.BASE_LR, weight_decay=solver.WEIGHT_DECAY, weight_decay_norm=solver.WEIGHT_DECAY_NORM,
        bias_lr_factor=solver.BIAS_LR_FACTOR, heads_lr_factor=solver.HEADS_LR_FACTOR,
        weight_decay_bias=solver.WEIGHT_DECAY_BIAS, freeze_layers=freeze_layers, flag=flag,
        fix_adaptor_sub_lr=solver.FIX_ADAPTOR_SUB_LR)
    if not params:
        raise ValueError("build_optimizer: the model has no trainable Parameters")
    if opt_name == "SGD":
        momentum = 0.0 if flag == "meta" else solver.MOMENTUM
        nesterov = False if flag == "meta" else solver.NESTEROV
        optimizer = SGD(params, lr=solver.BASE_LR, momentum=momentum, nesterov=nesterov, compile=cfg.MODEL.COMPILE)
    else:
        optimizer = _OPTIMIZERS[opt_name](params, lr=solver.BASE_LR, compile=cfg.MODEL.COMPILE)
    clip = solver.CLIP_GRADIENTS
    if clip.ENABLED:
        optimizer.grad_clipper = GradientClipper(clip.CLIP_TYPE, clip.CLIP_VALUE, clip.NORM_TYPE)
    if len(cfg.MODEL.FREEZE_LAYERS) > 0 and solver.FREEZE_ITERS > 0:
        optimizer.freeze_iters = int(solver.FREEZE_ITERS)
    return optimizer, params


def warmup_iterations(cfg, iters_per_epoch: int) -> int:
    """``SOLVER.WARMUP_ITERS`` counts epochs in fastreid_ms, as in ACL-DGReID: the warm-up lasts this many
    iterations."""
    return int(cfg.SOLVER.WARMUP_ITERS * iters_per_epoch)


def build_lr_scheduler(cfg, optimizer: Optimizer, iters_per_epoch: int) -> Dict[str, Any]:
    """``{"lr_sched": MultiStepLR | CosineAnnealingLR, "warmup_sched": WarmupLR}`` (no warm-up entry when
    ``SOLVER.WARMUP_ITERS`` is 0).

    ``SOLVER.WARMUP_ITERS`` is in epochs (FastReID/ACL-DGReID's trainer multiplies it by ``iters_per_epoch``):
    the warm-up scheduler runs :func:`warmup_iterations` iterations. Cosine ``T_max = MAX_EPOCH -
    max(ceil(warm-up iterations / iters_per_epoch), DELAY_EPOCHS)``. The main scheduler is built first, then the
    warm-up (which leaves ``lr = base * WARMUP_FACTOR``), as in the reference.
    """
    if iters_per_epoch <= 0:
        raise ValueError(f"build_lr_scheduler: iters_per_epoch must be positive, got {iters_per_epoch}")
    solver = cfg.SOLVER
    warmup_iters = warmup_iterations(cfg, iters_per_epoch)
    t_max = solver.MAX_EPOCH - max(math.ceil(warmup_iters / iters_per_epoch), solver.DELAY_EPOCHS)
    if solver.SCHED == "MultiStepLR":
        main = lr_scheduler.MultiStepLR(optimizer, milestones=list(solver.STEPS), gamma=solver.GAMMA)
    elif solver.SCHED == "CosineAnnealingLR":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=solver.ETA_MIN_LR)
    else:
        raise ValueError(f"SOLVER.SCHED={solver.SCHED!r} is not supported; expected 'MultiStepLR' or "
                         f"'CosineAnnealingLR'")
    scheduler = {"lr_sched": main}
    if warmup_iters > 0:
        scheduler["warmup_sched"] = lr_scheduler.WarmupLR(optimizer, warmup_factor=solver.WARMUP_FACTOR,
                                                          warmup_iters=warmup_iters,
                                                          warmup_method=solver.WARMUP_METHOD)
    return scheduler
