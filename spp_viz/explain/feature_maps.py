"""Everything the feature-maps page shows, from one forward pass: conv5, channel ranking, predictions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from PIL import Image

from ..images import resize_short_side, to_tensor
from ..models import Prediction, SPPNet, top_predictions


@dataclass(frozen=True)
class FeatureMaps:
    """conv5 of one image and what the page derives from it.

    For a network whose conv5 ends in a clipping activation (EfficientNet-Lite0: ReLU6), ``responses`` is the map
    before the clip and the channels are ranked by it: after the clip dozens of channels tie at exactly 6.0. For
    other networks ``responses`` is ``conv5``.
    """

    input_hw: tuple[int, int]  # (H, W) of the tensor fed to the network
    responses: np.ndarray  # float32 [C, H5, W5], before the clip (conv5 itself when nothing clips)
    clip: str | None  # the clipping activation's name ("ReLU6"), or None
    clip_range: tuple[float, float] | None  # (floor, ceiling) it clips to, (0.0, 6.0) for ReLU6; None
    channel_max: np.ndarray  # [C] strongest response of each channel, before the clip
    ranking: np.ndarray  # [C] channel indices, strongest response first (ties broken by the mean response)
    spp_length: int  # k * M: the same for every input size
    top5: list[Prediction]

    @cached_property
    def conv5(self) -> np.ndarray:
        """float32 [C, H5, W5], what the pyramid pools (after the clip). Derived rather than stored, so a cached
        result (pickled once per session that reads it) holds one map, not two."""
        if self.clip_range is None:
            return self.responses
        return np.clip(self.responses, *self.clip_range)

    @property
    def clip_ceiling(self) -> float | None:
        """The value the clip caps at (6.0 for ReLU6), or None."""
        return None if self.clip_range is None else self.clip_range[1]

    @property
    def conv5_shape(self) -> tuple[int, int, int]:
        """(H5, W5, C), the way the paper writes feature map sizes."""
        c, h, w = self.responses.shape  # the clip keeps the shape: no need to derive conv5
        return h, w, c

    @property
    def saturated_channels(self) -> int:
        """How many channels reach the clip's ceiling somewhere (0 when nothing clips)."""
        if self.clip_ceiling is None:
            return 0
        # A channel's clipped maximum reaches the ceiling exactly when its maximum before the clip does.
        return int((self.channel_max >= self.clip_ceiling).sum())


def prepare_input(model: SPPNet, img: Image.Image, short_side: int | None = 256) -> torch.Tensor:
    """The paper's full-image view: aspect ratio kept, shorter side ``short_side`` (None: the image as it is)."""
    view = img if short_side is None else resize_short_side(img, short_side)
    return to_tensor(view, model.device)


def compute_feature_maps(model: SPPNet, img: Image.Image, short_side: int | None = 256) -> FeatureMaps:
    """Run the model once on the full-image view and collect conv5, the channel ranking and the top-5."""
    x = prepare_input(model, img, short_side)
    with torch.inference_mode():
        logits, _, responses = model.forward_with_responses(x)
        channel_max = responses[0].amax(dim=(1, 2))  # (C, H5, W5) -> (C,)
        # Order by mean first, then a stable sort by max: equal maxima (a plain ReLU's zeros) go by the mean.
        by_mean = responses[0].mean(dim=(1, 2)).argsort(descending=True, stable=True)
        ranking = by_mean[channel_max[by_mean].argsort(descending=True, stable=True)]
    # One device -> host copy per array, after all the work on the device is done.
    return FeatureMaps(
        input_hw=(x.shape[-2], x.shape[-1]),
        responses=responses[0].float().cpu().numpy(),
        clip=model.clip,
        clip_range=model.clip_range,
        channel_max=channel_max.float().cpu().numpy(),
        ranking=ranking.cpu().numpy(),
        spp_length=model.spp_length,
        top5=top_predictions(logits[0], model.class_names),
    )
