"""Functional 2-D convolution used by every convolution of fastreid_ms models, with a fast CPU path.

``conv2d(x, weight, bias, stride, padding, dilation, groups)`` has PyTorch ``F.conv2d`` semantics and accepts a
Parameter or any computed Tensor as ``weight`` (the meta-learning fast weight ``w - step * g``).

Why two implementations: MindSpore 2.10 hands oneDNN plain NCHW tensors, and on AVX-512 CPUs oneDNN then runs its
naive reference kernel for every convolution larger than 1x1 (100-300x slower than PyTorch; see
MINDSPORE_NOTES.md section 0). On AVX2-only CPUs the same native kernel is fast. The "matmul" implementation
avoids oneDNN's convolution entirely:

* forward: ``ops.unfold`` (im2col) and one (grouped, batch-broadcast) matmul; 1x1 stride-1 kernels use the input
  itself as the columns;
* backward (custom ``bprop``s): grad wrt weight is one batched matmul of the output gradient with the saved
  columns, summed over the batch; grad wrt input is ``W^T @ dY`` followed by one ``ops.fold`` (col2im) - a plain
  matmul for 1x1 stride-1 kernels.

Both match the native op to float32 rounding in forward and gradients (tests/test_conv.py).

Which one runs is decided per call by :func:`conv_impl_for`: on GPU/Ascend always the native kernel; on CPU the
process-wide mode set by :func:`set_cpu_conv_impl` (``MODEL.CPU_CONV``): "native", "matmul", or "auto" (default),
which probes both implementations once per process on small representative convolutions (forward + backward, well
under a second) and keeps the faster one, separately for plain 1x1 convolutions ("pointwise": stride 1, one group,
a GEMM that oneDNN runs fast on any CPU) and all others ("spatial": larger kernels, and strided or grouped 1x1 ones,
which oneDNN on AVX-512 also hands to its reference kernel - 30-60x slower than the matmul path there).
"""
import logging
import time
from functools import lru_cache
from typing import Dict, Optional, Tuple

import mindspore
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from .weight_init import torch_default_bias, torch_default_weight

__all__ = [
    "conv2d",
    "Conv2d",
    "set_cpu_conv_impl",
    "get_cpu_conv_impl",
    "conv_impl_for",
    "kernel_kind_of",
    "probe_cpu_conv_impl",
    "probe_timings",
    "CPU_CONV_MODES",
]

logger = logging.getLogger(__name__)

CPU_CONV_MODES = ("auto", "matmul", "native")
IMPLEMENTATIONS = ("native", "matmul")
KERNEL_KINDS = ("pointwise", "spatial")

# The auto probe: (input shape, weight shape, stride, padding) per kernel kind, and the time after which a single
# native call counts as "clearly the slow reference kernel" (the probe then stops timing it).
_PROBE_CASES = {
    "spatial": ((2, 32, 32, 16), (32, 32, 3, 3), 1, 1),
    "pointwise": ((2, 64, 32, 16), (64, 64, 1, 1), 1, 0),
}
_PROBE_REPEATS = 2
_PROBE_SLOW_CALL_S = 0.25
_PROBE_BUDGET_S = 0.5   # no timed round beyond the first once the probe has run this long


class _CpuConvPolicy:
    """Process-wide CPU convolution choice: the configured mode and the cached auto-probe result."""

    def __init__(self):
        self.mode = "auto"
        self.probed: Optional[Dict[str, str]] = None
        self.probe_seconds: Optional[Dict[str, Dict[str, float]]] = None


_POLICY = _CpuConvPolicy()


def _check_mode(mode) -> str:
    if not isinstance(mode, str) or mode.lower() not in CPU_CONV_MODES:
        raise ValueError(f"MODEL.CPU_CONV={mode!r} is not a CPU convolution implementation; expected one of "
                         f"{', '.join(CPU_CONV_MODES)}")
    return mode.lower()


def set_cpu_conv_impl(mode: str) -> None:
    """Choose how convolutions run on CPU: "auto" (probe once and take the faster), "matmul" or "native".

    Called by the engine with ``cfg.MODEL.CPU_CONV``. With "auto" the probe runs here (once per process) when the
    current device is the CPU, so that it happens before any gradient is traced.
    """
    _POLICY.mode = _check_mode(mode)
    if _POLICY.mode == "auto" and _device_target() == "CPU":
        probe_cpu_conv_impl()


def get_cpu_conv_impl() -> str:
    """The configured CPU mode ("auto", "matmul" or "native")."""
    return _POLICY.mode


def kernel_kind_of(weight_shape, stride: Tuple[int, int], groups: int) -> str:
    """The auto-probe's kernel kind of a convolution: "pointwise" for a 1x1 kernel with stride 1 and one group (a
    plain GEMM), "spatial" for every other one (larger, strided or grouped kernels)."""
    plain = tuple(weight_shape[2:]) == (1, 1) and tuple(stride) == (1, 1) and groups == 1
    return "pointwise" if plain else "spatial"


def conv_impl_for(device_target: str, mode: str, kernel_kind: str, probe=None) -> str:
    """The implementation ("native" or "matmul") a convolution uses.

    ``device_target`` is MindSpore's ("CPU", "GPU", "Ascend"); anything but CPU gives "native". ``kernel_kind`` is
    "pointwise" (1x1) or "spatial". ``probe`` is a callable returning the auto-probe decision per kernel kind
    (default: :func:`probe_cpu_conv_impl`); it is only called for mode "auto" on CPU.
    """
    mode = _check_mode(mode)
    if kernel_kind not in KERNEL_KINDS:
        raise ValueError(f"kernel_kind={kernel_kind!r}; expected one of {', '.join(KERNEL_KINDS)}")
    if str(device_target).upper() != "CPU":
        return "native"
    if mode != "auto":
        return mode
    return (probe or probe_cpu_conv_impl)()[kernel_kind]


def _device_target() -> str:
    return mindspore.get_context("device_target")


def _pair(value, what: str) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"conv2d: {what}={value!r}; expected an int or a pair of ints")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch ``F.conv2d`` semantics: NCHW input, (out, in/groups, kh, kw) weight, symmetric integer padding
    (an int or (pad_h, pad_w)); ``weight`` may be a Parameter or a computed Tensor."""
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D input and a 4-D weight, got input shape {tuple(x.shape)} and weight "
                         f"shape {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        raise ValueError(f"conv2d: input shape {tuple(x.shape)} and weight shape {tuple(weight.shape)} do not fit "
                         f"groups={groups} (need in_channels == weight.shape[1] * groups and "
                         f"out_channels % groups == 0)")
    impl = conv_impl_for(_device_target(), _POLICY.mode, kernel_kind_of(weight.shape, stride, groups))
    if impl == "native":
        y = ops.conv2d(x, weight, None, stride, "pad", padding, dilation, groups)
    else:
        y = matmul_conv2d(x, weight, stride, padding, dilation, groups)
    if bias is not None:
        y = ops.bias_add(y, bias)   # same-shape kernel; a broadcast add is ~10x slower on MindSpore CPU
    return y


class Conv2d(nn.Cell):
    """``nn.Conv2d`` with PyTorch's layout, defaults (``bias=True``) and initialisation, running :func:`conv2d`.

    Parameters ``weight`` (out, in/groups, kh, kw) and ``bias`` (out) when ``bias=True``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels={out_channels} must be divisible "
                             f"by groups={groups}")
        kh, kw = _pair(kernel_size, "kernel_size")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = Parameter(torch_default_weight((out_channels, in_channels // groups, kh, kw)), name="weight")
        fan_in = in_channels // groups * kh * kw
        self.bias = Parameter(torch_default_bias(out_channels, fan_in), name="bias") if bias else None

    def construct(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extend_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")


def matmul_conv2d(x, weight, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """The im2col + matmul convolution (no bias); ``stride``/``padding``/``dilation`` are (h, w) pairs."""
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    n, _, h, w = x.shape
    kernel = tuple(weight.shape[2:])
    oh = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    if kernel == (1, 1) and padding == (0, 0) and stride == (1, 1):
        cols = x.reshape(n, x.shape[1], h * w)
    else:
        cols = _unfold_cell(kernel, dilation, padding, stride)(x)
    return _column_matmul_cell(groups)(cols, weight).reshape(n, weight.shape[0], oh, ow)


class _Unfold(nn.Cell):
    """``ops.unfold`` (im2col: (N, C, H, W) -> (N, C*kh*kw, L), channel-major rows) whose backward is one
    ``ops.fold`` (col2im) of the incoming gradient."""

    def __init__(self, kernel, dilation, padding, stride):
        super().__init__()
        self.kernel, self.dilation, self.padding, self.stride = kernel, dilation, padding, stride

    def construct(self, x):
        return ops.unfold(x, self.kernel, self.dilation, self.padding, self.stride)

    def bprop(self, x, out, dout):
        size = Tensor([x.shape[2], x.shape[3]], mindspore.int32)
        return (ops.fold(dout, size, self.kernel, self.dilation, self.padding, self.stride),)


class _ColumnMatmul(nn.Cell):
    """``y[n] = W @ cols[n]`` per group: cols (N, K, L) with K = C*kh*kw, weight (O, C/g, kh, kw) -> (N, O, L).

    Backward: grad wrt the columns ``W^T @ dY``; grad wrt the weight ``sum_n dY[n] @ cols[n]^T`` as one batched
    matmul and a sum over the batch (faster on MindSpore CPU than a single matmul over N*L, whose operand layout
    needs slow transposes).
    """

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups
        self.matmul_nt = ops.BatchMatMul(transpose_b=True)

    def construct(self, cols, weight):
        n, k, positions = cols.shape
        o, g = weight.shape[0], self.groups
        if g == 1:
            return ops.matmul(weight.reshape(o, k), cols)
        y = ops.matmul(weight.reshape(g, o // g, k // g), cols.reshape(n, g, k // g, positions))
        return y.reshape(n, o, positions)

    def bprop(self, cols, weight, out, dout):
        n, k, positions = cols.shape
        o, g = weight.shape[0], self.groups
        if g == 1:
            w2 = weight.reshape(o, k)
            return ops.matmul(w2.T, dout), self.matmul_nt(dout, cols).sum(0).reshape(weight.shape)
        w3 = weight.reshape(g, o // g, k // g)
        dy = dout.reshape(n, g, o // g, positions)
        dcols = ops.matmul(w3.swapaxes(1, 2), dy).reshape(n, k, positions)
        dw = self.matmul_nt(dy, cols.reshape(n, g, k // g, positions)).sum(0)
        return dcols, dw.reshape(weight.shape)


@lru_cache(maxsize=None)
def _unfold_cell(kernel, dilation, padding, stride) -> _Unfold:
    return _Unfold(kernel, dilation, padding, stride)


@lru_cache(maxsize=None)
def _column_matmul_cell(groups: int) -> _ColumnMatmul:
    return _ColumnMatmul(groups)


def probe_timings() -> Optional[Dict[str, Dict[str, float]]]:
    """Best forward+backward seconds per kernel kind and implementation measured by the last auto probe (None when
    the probe has not run in this process)."""
    return None if _POLICY.probe_seconds is None else {k: dict(v) for k, v in _POLICY.probe_seconds.items()}


def _time_fwd_bwd(impl: str, x, weight, stride, padding) -> float:
    """Seconds for one forward + backward (wrt input and weight) of the convolution with ``impl``."""
    if impl == "native":
        def loss(a, b):
            return ops.conv2d(a, b, None, stride, "pad", padding, 1, 1).sum()
    else:
        def loss(a, b):
            return matmul_conv2d(a, b, (stride, stride), (padding, padding), (1, 1), 1).sum()
    grad_fn = mindspore.grad(loss, grad_position=(0, 1))
    start = time.perf_counter()
    grads = grad_fn(x, weight)
    grads[0].asnumpy()
    grads[1].asnumpy()
    return time.perf_counter() - start


def probe_cpu_conv_impl(refresh: bool = False) -> Dict[str, str]:
    """Time native vs matmul (forward + backward) once per process on a small 3x3 and a small 1x1 convolution and
    return ``{"pointwise": impl, "spatial": impl}`` with the faster implementation of each (ties go to native).

    Each implementation runs once to warm up and then up to ``_PROBE_REPEATS`` times (best time kept; no further
    round once ``_PROBE_BUDGET_S`` has passed); a native call slower than ``_PROBE_SLOW_CALL_S`` stops its timing
    early (that is the reference kernel). On an idle CPU the whole probe takes a fraction of a second. The result is
    cached for the process; ``refresh=True`` re-measures.
    """
    if _POLICY.probed is not None and not refresh:
        return dict(_POLICY.probed)
    rng = np.random.default_rng(0)
    decision, seconds = {}, {}
    start = time.perf_counter()
    for kind, (x_shape, w_shape, stride, padding) in _PROBE_CASES.items():
        x = Tensor(rng.standard_normal(x_shape).astype(np.float32))
        weight = Tensor((rng.standard_normal(w_shape) * 0.1).astype(np.float32))
        times = {impl: [] for impl in IMPLEMENTATIONS}
        for round_index in range(_PROBE_REPEATS + 1):   # round 0 warms up; interleaved to share load spikes
            if round_index > 1 and time.perf_counter() - start > _PROBE_BUDGET_S:
                break
            for impl in IMPLEMENTATIONS:
                if impl == "native" and times["native"] and times["native"][0] > _PROBE_SLOW_CALL_S:
                    continue
                times[impl].append(_time_fwd_bwd(impl, x, weight, stride, padding))
        best = {impl: min(t[1:]) if len(t) > 1 else t[0] for impl, t in times.items()}
        decision[kind] = "matmul" if best["matmul"] < best["native"] else "native"
        seconds[kind] = {impl: round(t, 4) for impl, t in best.items()}
    _POLICY.probed, _POLICY.probe_seconds = decision, seconds
    logger.info("CPU convolution probe (forward+backward seconds %s): using %s", seconds, decision)
    return dict(decision)
