"""Squeeze-and-excitation block: FastReID's ``SELayer`` and ACL-DGReID's ``MetaSELayer`` (the same computation with
other Parameter names)."""
from mindspore import nn, ops

from .dense import Dense
from .helpers import global_avg_pool

__all__ = ["SELayer"]


class SELayer(nn.Cell):
    """``x * sigmoid(fc2(relu(fc1(GAP(x)))))`` per sample and channel, both fully connected layers without bias
    (``int(C / reduction)`` hidden units, PyTorch's default initialisation).

    ``names='sequential'`` (FastReID): Parameters ``fc.0.weight`` and ``fc.2.weight`` (upstream's
    ``nn.Sequential(Linear, ReLU, Linear, Sigmoid)``); ``names='fc1_fc2'`` (ACL-DGReID's ``MetaSELayer``):
    ``fc1.weight`` and ``fc2.weight``.
    """

    def __init__(self, channel, reduction=16, names="sequential"):
        super().__init__()
        if names not in ("sequential", "fc1_fc2"):
            raise ValueError(f"SELayer names={names!r}; expected 'sequential' or 'fc1_fc2'")
        hidden = int(channel / reduction)
        self.sequential = names == "sequential"
        if self.sequential:
            self.fc = nn.SequentialCell([Dense(channel, hidden, bias=False), nn.ReLU(),
                                         Dense(hidden, channel, bias=False), nn.Sigmoid()])
        else:
            self.fc1 = Dense(channel, hidden, bias=False)
            self.fc2 = Dense(hidden, channel, bias=False)

    def construct(self, x):
        pooled = global_avg_pool(x)
        if self.sequential:
            y = self.fc(pooled)
        else:
            y = ops.sigmoid(self.fc2(ops.relu(self.fc1(pooled))))
        return x * y.reshape(y.shape[0], y.shape[1], 1, 1)
