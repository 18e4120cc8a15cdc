"""Meta-learning building blocks of ACL-DGReID (reference ``fastreid/modeling/ops.py``).

Every ``Meta*`` Cell computes with its own Parameters, or - in a meta-test forward - with "fast weights"
``param - step_sizes[name] * fast_grads[name]`` (a first-order MAML inner step: the fast gradient is a constant).
The reference passes the inner gradients as a list consumed FIFO in forward order; here they are a dict keyed by the
Parameter's full name (``param.name``, equal to its name in ``model.parameters_and_names()``), so a parameter without
an entry simply keeps its slow value.

Normalisation layers follow PyTorch: ``MetaBNNorm`` has momentum 0.1 in the PyTorch sense (``new = 0.9 old + 0.1
batch``), updates the running variance with the UNBIASED batch variance, eps 1e-5, and has three modes:

* eval (``set_train(False)``): running statistics;
* train with ``opt.type_running_stats == 'general'`` (the basic step): batch statistics, running statistics updated;
* train with ``'hold'`` or with ``opt`` None (meta-train/meta-test steps): batch statistics, running statistics
  untouched (gradients still flow to the fast or slow affine parameters).

Performance note (MindSpore CPU): broadcasting element-wise kernels (``x * s.reshape(1, C, 1, 1)``) run 5-10x slower
than same-shape ones and than the BatchNorm kernel, so per-channel scalings use
:func:`fastreid_ms.layers.helpers.channel_scale` (an inference-form BatchNorm giving the same products), instance
norm is a batch norm over an ``(1, N*C, H, W)`` view and global average pooling is an AvgPool over the whole map.
"""
from dataclasses import dataclass, field
from typing import Dict, Iterable, Mapping, Optional

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore import dtype as mstype
from mindspore.common.initializer import Normal, initializer

from fastreid_ms.layers.conv import conv2d
from fastreid_ms.layers.helpers import channel_scale
from fastreid_ms.layers.weight_init import torch_default_bias, torch_default_weight
from fastreid_ms.modeling.losses.utils import l2_normalize

__all__ = [
    "MetaOpt", "opt_setting", "meta_step_sizes", "fast_param", "init_tensor", "global_avg_pool", "linear",
    "MetaConv2d", "MetaLinear", "MetaBNNorm", "MetaINNorm", "MetaIBNNorm", "MetaGate", "MetaSELayer", "MetaParam",
    "HyperRouter", "MetaSequential",
]

_OPT_FLAGS = {
    "basic": ("general", False),
    "mtrain": ("hold", False),
    "mtest": ("hold", True),
}
_RUNNING_STATS_MODES = ("general", "hold")


@dataclass
class MetaOpt:
    """What a forward pass does in the meta-learning schedule (the reference's ``opt`` dict).

    type: 'basic' | 'mtrain' | 'mtest' (selects the loss composition in ``Baseline``).
    type_running_stats: 'general' (BN updates its running statistics) or 'hold' (it does not).
    meta: use fast weights ``param - step_sizes[name] * fast_grads[name]`` where ``fast_grads`` has an entry.
    fast_grads: Parameter full name -> gradient Tensor (treated as a constant).
    step_sizes: Parameter full name -> inner step size (float).
    """
    type: str = "basic"
    type_running_stats: str = "general"
    meta: bool = False
    fast_grads: Optional[Dict[str, Tensor]] = field(default=None, repr=False)
    step_sizes: Optional[Dict[str, float]] = field(default=None, repr=False)

    def __post_init__(self):
        if self.type not in _OPT_FLAGS:
            raise ValueError(f"MetaOpt.type must be one of {sorted(_OPT_FLAGS)}, got {self.type!r}")
        if self.type_running_stats not in _RUNNING_STATS_MODES:
            raise ValueError(f"MetaOpt.type_running_stats must be one of {_RUNNING_STATS_MODES}, "
                             f"got {self.type_running_stats!r}")
        if self.meta and self.fast_grads and self.step_sizes is None:
            raise ValueError("MetaOpt(meta=True) with fast_grads needs step_sizes (parameter name -> step size)")


def opt_setting(flag: str, fast_grads: Optional[Mapping[str, Tensor]] = None,
                step_sizes: Optional[Mapping[str, float]] = None) -> MetaOpt:
    """The reference trainer's ``opt_setting``: 'basic' -> general/meta False, 'mtrain' -> hold/meta False,
    'mtest' -> hold/meta True (with the inner gradients and step sizes)."""
    if flag not in _OPT_FLAGS:
        raise ValueError(f"opt_setting flag must be one of {sorted(_OPT_FLAGS)}, got {flag!r}")
    running, meta = _OPT_FLAGS[flag]
    return MetaOpt(type=flag, type_running_stats=running, meta=meta,
                   fast_grads=dict(fast_grads) if fast_grads is not None else None,
                   step_sizes=dict(step_sizes) if step_sizes is not None else None)


def meta_step_sizes(names: Iterable[str], lr: float, adaptor_factor: float = 0.5) -> Dict[str, float]:
    """Inner step size per parameter name: ``lr``, times ``adaptor_factor`` when the name contains 'adaptor'
    (the reference sets ``w_step_size = lr * (0.5 if 'adaptor' in module_path else 1)``; both the adaptorN_base and
    adaptorN_sub modules match)."""
    lr = float(lr)
    return {name: lr * adaptor_factor if "adaptor" in name else lr for name in names}


def fast_param(param: Parameter, opt: Optional[MetaOpt]):
    """``param`` itself, or its fast weight ``param - step * stop_gradient(fast_grad)`` in a meta forward.

    Frozen parameters (``requires_grad=False``, e.g. the bias of a ``bias_freeze`` BN) are never updated, as the
    reference's ``update_parameter`` is not called for them. The gradient of the fast weight wrt ``param`` is the
    identity (first-order approximation).
    """
    if opt is None or not opt.meta or not opt.fast_grads or not param.requires_grad:
        return param
    grad = opt.fast_grads.get(param.name)
    if grad is None:
        return param
    step = opt.step_sizes.get(param.name) if opt.step_sizes is not None else None
    if step is None:
        raise KeyError(f"MetaOpt.step_sizes has no step size for parameter {param.name!r}, which has a fast gradient")
    if not isinstance(grad, Tensor):
        grad = Tensor(np.asarray(grad, dtype=np.float32))
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(f"fast gradient of {param.name!r} has shape {tuple(grad.shape)}, "
                         f"the parameter {tuple(param.shape)}")
    return param - float(step) * ops.stop_gradient(grad)


def global_avg_pool(x):
    """(N, C, H, W) -> (N, C) spatial mean, as an average pool over the whole map (on CPU its forward and backward
    are several times faster than a mean reduction and its broadcast gradient)."""
    n, c, h, w = x.shape
    return ops.AvgPool(kernel_size=(h, w), strides=1, pad_mode="VALID")(x).reshape(n, c)


_MATMUL_TRANSPOSE_B = ops.MatMul(transpose_b=True)


def linear(x, weight, bias=None):
    """PyTorch ``F.linear``: ``x @ weight.T (+ bias)`` for x (N, in) and weight (out, in). A MatMul with
    ``transpose_b`` is several times faster on CPU than ``ops.dense`` / ``ops.matmul(x, weight.T)`` for the large
    classifier and centre matrices (forward and backward)."""
    y = _MATMUL_TRANSPOSE_B(x, weight)
    return y if bias is None else ops.bias_add(y, bias)


def init_tensor(init, shape):
    """``initializer(init, shape, float32)``; an empty Tensor when a dimension is 0 (e.g. a classifier built with
    NUM_CLASSES 0 for evaluation), which MindSpore's initializer rejects."""
    shape = tuple(int(d) for d in shape)
    if 0 in shape:
        return Tensor(np.zeros(shape, dtype=np.float32))
    return initializer(init, shape, mstype.float32)


class MetaConv2d(nn.Cell):
    """2-D convolution (PyTorch ``nn.Conv2d`` layout and defaults) that can run on fast weights.

    Parameters ``weight`` (out, in/groups, kh, kw) and, with ``bias=True``, ``bias`` (PyTorch's default init).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"MetaConv2d: in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * kernel_size * kernel_size
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(torch_default_weight(shape), name="weight")
        self.bias = Parameter(torch_default_bias(out_channels, fan_in), name="bias") if bias else None

    def construct(self, x, opt=None):
        weight = fast_param(self.weight, opt)
        bias = fast_param(self.bias, opt) if self.bias is not None else None
        return conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extend_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, bias={self.bias is not None}")


class MetaLinear(nn.Cell):
    """Fully connected layer ``x @ weight.T (+ bias)``; **no bias by default**, as the reference's MetaLinear."""

    def __init__(self, in_features, out_features, bias=False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(torch_default_weight((out_features, in_features)), name="weight")
        self.bias = Parameter(torch_default_bias(out_features, in_features), name="bias") if bias else None

    def construct(self, x, opt=None):
        weight = fast_param(self.weight, opt)
        bias = fast_param(self.bias, opt) if self.bias is not None else None
        return linear(x, weight, bias)

    def extend_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class MetaBNNorm(nn.Cell):
    """BatchNorm2d with PyTorch semantics and the reference's three modes (module docstring).

    ``bias_freeze=True`` makes ``bias`` a frozen Parameter (``requires_grad=False``, never meta-updated), as in the
    BNNeck and the ``map`` norms. Parameters: weight (1), bias (0), running_mean (0), running_var (1).
    """

    def __init__(self, num_features, bias_freeze=False, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum  # PyTorch convention: running = (1 - momentum) * running + momentum * batch
        self.bias_freeze = bias_freeze
        self.weight = Parameter(init_tensor("ones", (num_features,)), name="weight")
        self.bias = Parameter(init_tensor("zeros", (num_features,)), name="bias",
                              requires_grad=not bias_freeze)
        self.running_mean = Parameter(init_tensor("zeros", (num_features,)), name="running_mean",
                                      requires_grad=False)
        self.running_var = Parameter(init_tensor("ones", (num_features,)), name="running_var",
                                     requires_grad=False)

    def construct(self, x, opt=None):
        if x.ndim != 4:
            raise ValueError(f"MetaBNNorm expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
        weight = fast_param(self.weight, opt)
        bias = fast_param(self.bias, opt)
        if not self.training:
            return ops.batch_norm(x, self.running_mean, self.running_var, weight, bias, False, self.momentum,
                                  self.eps)
        if opt is not None and opt.type_running_stats == "general":
            # The kernel updates the running Parameters in place (PyTorch momentum, unbiased variance).
            return ops.batch_norm(x, self.running_mean, self.running_var, weight, bias, True, self.momentum,
                                  self.eps)
        c = self.num_features
        return ops.batch_norm(x, ops.zeros(c, x.dtype), ops.ones(c, x.dtype), weight, bias, True, self.momentum,
                              self.eps)

    def extend_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, bias_freeze={self.bias_freeze}"


class MetaINNorm(nn.Cell):
    """InstanceNorm2d (affine, no running statistics; batch statistics in every mode), weight 1, bias 0.

    Reference quirk kept: an input with ``H == 1`` is returned multiplied by 0 (the reference zeroes it in place).
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = Parameter(init_tensor("ones", (num_features,)), name="weight")
        self.bias = Parameter(init_tensor("zeros", (num_features,)), name="bias")

    def construct(self, x, opt=None):
        if x.shape[2] == 1:
            return x * 0.0
        weight = fast_param(self.weight, opt)
        bias = fast_param(self.bias, opt)
        n, c, h, w = x.shape
        nc = n * c
        y = ops.batch_norm(x.reshape(1, nc, h, w), ops.zeros(nc, x.dtype), ops.ones(nc, x.dtype),
                           ops.tile(weight, (n,)), ops.tile(bias, (n,)), True, 0.1, self.eps)
        return y.reshape(n, c, h, w)

    def extend_repr(self):
        return f"{self.num_features}, eps={self.eps}"


class MetaIBNNorm(nn.Cell):
    """IBN-a norm: instance norm (``IN``) on the first ``int(C/2)`` channels, batch norm (``BN``) on the rest."""

    def __init__(self, planes):
        super().__init__()
        self.half = int(planes / 2)
        self.IN = MetaINNorm(self.half)
        self.BN = MetaBNNorm(planes - self.half)

    def construct(self, x, opt=None):
        out_in = self.IN(x[:, :self.half], opt)
        out_bn = self.BN(x[:, self.half:], opt)
        return ops.cat((out_in, out_bn), 1)


class MetaGate(nn.Cell):
    """Per-channel sigmoid fusion ``g * x1 + (1 - g) * x2`` with ``g = sigmoid(gate)``, ``gate`` (C,)."""

    def __init__(self, feat_dim):
        super().__init__()
        self.gate = Parameter(init_tensor(Normal(sigma=0.1), (feat_dim,)), name="gate")

    def construct(self, x1, x2, opt=None):
        g = ops.sigmoid(fast_param(self.gate, opt))
        return channel_scale(x1, g) + channel_scale(x2, 1.0 - g)


class MetaSELayer(nn.Cell):
    """Squeeze-and-excitation: GAP -> MetaLinear(C, C/r) -> ReLU -> MetaLinear(C/r, C) -> sigmoid -> scale x."""

    def __init__(self, channel, reduction=16):
        super().__init__()
        self.fc1 = MetaLinear(channel, int(channel / reduction), bias=False)
        self.fc2 = MetaLinear(int(channel / reduction), channel, bias=False)

    def construct(self, x, opt=None):
        y = global_avg_pool(x)
        y = ops.sigmoid(self.fc2(ops.relu(self.fc1(y, opt)), opt))
        return channel_scale(x, y)


class MetaParam(nn.Cell):
    """Class centres ``centers`` (num_classes, feat_dim) and the squared Euclidean distance matrix
    ``||x||^2 + ||c||^2 - 2 x c^T`` (N, num_classes). In a meta forward the FAST centres are used throughout (the
    previous MindSpore port mixed in the slow centres)."""

    def __init__(self, feat_dim, num_classes):
        super().__init__()
        self.centers = Parameter(init_tensor(Normal(sigma=0.01), (num_classes, feat_dim)),
                                 name="centers")

    def construct(self, x, opt=None):
        centers = fast_param(self.centers, opt)
        x_sq = (x * x).sum(1, keepdims=True)
        c_sq = ops.square(centers).sum(1).reshape(1, -1)
        return x_sq + c_sq - 2.0 * linear(x, centers)


class HyperRouter(nn.Cell):
    """Per-sample expert weights: ``v = GAP(x)``; ``h = relu(normalize(fc1(v)))``; ``W = fc2(h).reshape(N, C, K)``;
    ``weights = softmax_K(v @ W)`` (the reference's einsum 'bi,bil->bl', as a batched matmul). Also returns the
    domain logits ``fc_classifier(W.reshape(N, C*K))``, which the reference computes and never uses."""

    def __init__(self, planes, num_experts=4, num_domains=3, reduction=16):
        super().__init__()
        self.planes, self.num_experts = planes, num_experts
        self.fc1 = MetaLinear(planes, int(planes / reduction))
        self.fc2 = MetaLinear(int(planes / reduction), planes * num_experts)
        self.fc_classifier = MetaLinear(planes * num_experts, num_domains)

    def construct(self, x, opt=None):
        n = x.shape[0]
        v = global_avg_pool(x)
        h = ops.relu(l2_normalize(self.fc1(v, opt), 1))
        w = self.fc2(h, opt).reshape(n, self.planes, self.num_experts)
        domain_logits = self.fc_classifier(w.reshape(n, self.planes * self.num_experts), opt)
        logits = ops.bmm(v.reshape(n, 1, self.planes), w).reshape(n, self.num_experts)
        return ops.softmax(logits, -1), domain_logits


class MetaSequential(nn.SequentialCell):
    """``nn.SequentialCell`` (children named "0", "1", ...) whose ``construct(x, opt)`` passes ``opt`` on to every
    child (the reference's ``Sequential_ext``)."""

    def construct(self, x, opt=None):
        for cell in self.cell_list:
            x = cell(x, opt)
        return x
