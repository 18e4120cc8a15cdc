"""FastReID's layers for MindSpore: pooling, margin softmaxes, norms, attention blocks, weight init and the
CPU-aware convolution. ``pooling`` and ``any_softmax`` are also used as modules (heads pick a class by name)."""
from . import any_softmax, pooling  # noqa: F401
from .activation import *  # noqa: F401,F403
from .any_softmax import ArcSoftmax, CircleSoftmax, CosSoftmax, Linear  # noqa: F401
from .batch_norm import *  # noqa: F401,F403
from .conv import Conv2d, conv2d, get_cpu_conv_impl, set_cpu_conv_impl  # noqa: F401
from .helpers import channel_scale, spatial_mean  # noqa: F401
from .non_local import Non_local  # noqa: F401
from .pooling import *  # noqa: F401,F403
from .se_layer import SELayer  # noqa: F401
from .weight_init import weights_init_classifier, weights_init_kaiming  # noqa: F401
