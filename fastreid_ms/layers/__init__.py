"""FastReID's layers for MindSpore: convolution, fully connected, norms, pooling, margin softmaxes, attention blocks,
weight initialisation and shared tensor helpers. ``pooling`` and ``any_softmax`` are also used as modules (heads pick
a class by name). Every norm's ``construct`` is ``(x, update_stats=True)``."""
from . import any_softmax, pooling  # noqa: F401
from .activation import *  # noqa: F401,F403
from .any_softmax import ArcSoftmax, CircleSoftmax, CosSoftmax, Linear  # noqa: F401
from .batch_norm import *  # noqa: F401,F403
from .conv import Conv2d, conv2d  # noqa: F401
from .dense import Dense  # noqa: F401
from .helpers import global_avg_pool, l2_norm, l2_normalize, linear, max_pool_3x3_s2_ceil  # noqa: F401
from .non_local import Non_local  # noqa: F401
from .pooling import *  # noqa: F401,F403
from .se_layer import SELayer  # noqa: F401
from .weight_init import init_tensor, weights_init_classifier, weights_init_kaiming  # noqa: F401
from .splat import SplAtConv2d, radix_softmax  # noqa: F401
