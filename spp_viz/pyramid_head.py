"""A classifier that reads the paper's pyramid on a pretrained network: the teacher's own fc as a start, plus fully
connected layers over every level, learned by distillation (``spp_viz.distill``).

The start needs no training and no file: a network whose trained head is global average pooling + fc (Lite0)
already classifies the mean of its conv5 cells, and the mean of the finest level's bins is close to it (equal when
conv5 has exactly n x n cells, one cell per bin). So the head begins as the teacher applied to that mean and learns
only a correction, ``fc7(relu(fc6(pyramid vector)))``, which reads all levels and starts at zero (fc7 is zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .pyramid import num_bins


class PyramidHead(nn.Module):
    """logits = teacher(mean of the finest level's bins) + fc7(relu(fc6(v))), v the max pyramid Tensor[N, C * M].

    Args:
        teacher: the pretrained network's own fc, Linear(C, classes); shared with it (read, never trained here).
        channels: C, conv5 channels.
        levels: the pyramid, finest first (the vector's layout: level by level, each Tensor[C, n, n] flattened).
        rank: width of fc6, the correction's bottleneck.
    """

    def __init__(self, teacher: nn.Linear, channels: int, levels: Sequence[int], rank: int) -> None:
        super().__init__()
        if teacher.in_features != channels:
            raise ValueError(f"the teacher's fc reads {teacher.in_features} channels, conv5 has {channels}")
        if list(levels) != sorted(levels, reverse=True):
            raise ValueError(f"levels go finest first, e.g. (6, 3, 2, 1); got {tuple(levels)}")
        self.channels, self.levels, self.rank = channels, tuple(levels), rank
        self.finest = levels[0]
        # A plain attribute, not a submodule: the teacher's weights stay the pretrained model's (not saved here).
        object.__setattr__(self, "teacher", teacher)
        self.fc6 = nn.Linear(channels * num_bins(levels), rank)
        self.fc7 = nn.Linear(rank, teacher.out_features)
        nn.init.zeros_(self.fc7.weight)  # the correction starts at zero: the untrained head is the start alone
        nn.init.zeros_(self.fc7.bias)

    def start(self, v: Tensor) -> Tensor:
        """The teacher's logits on the mean of the finest level's bins: Tensor[N, C * M] -> Tensor[N, classes]."""
        n2 = self.finest * self.finest
        finest = v[:, : self.channels * n2].reshape(-1, self.channels, n2)  # (N, C*n*n) -> (N, C, n*n), channel-major
        return self.teacher(finest.mean(2))

    def correction(self, v: Tensor) -> Tensor:
        return self.fc7(torch.relu(self.fc6(v)))

    def forward(self, v: Tensor) -> Tensor:
        return self.start(v) + self.correction(v)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, rank={self.rank}, start=the teacher's fc on the {self.finest}x{self.finest} mean"
