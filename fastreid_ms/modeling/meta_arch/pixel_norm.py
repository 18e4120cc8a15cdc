"""The per-channel input normalisation constants of a meta-architecture (``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``)."""
from typing import Sequence, Tuple

import numpy as np
from mindspore import Tensor

__all__ = ["pixel_constants"]


def pixel_constants(pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> Tuple[int, Tensor, Tensor]:
    """``(num_channels, mean, std)`` with ``mean``/``std`` shaped (1, C, 1, 1) for ``(images - mean) / std``.
    Constants, not Parameters: not saved, like the reference's non-persistent buffers."""
    mean = np.asarray(pixel_mean, dtype=np.float32).reshape(-1)
    std = np.asarray(pixel_std, dtype=np.float32).reshape(-1)
    if mean.shape != std.shape:
        raise ValueError(f"MODEL.PIXEL_MEAN {list(pixel_mean)} and MODEL.PIXEL_STD {list(pixel_std)} differ in "
                         f"length")
    return int(mean.shape[0]), Tensor(mean.reshape(1, -1, 1, 1)), Tensor(std.reshape(1, -1, 1, 1))
