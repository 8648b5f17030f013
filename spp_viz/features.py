"""Everything the feature-maps page shows, from one forward pass: conv5, channel ranking, predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .images import resize_short_side, to_tensor
from .models import Prediction, SPPNet, top_predictions


@dataclass(frozen=True)
class FeatureMaps:
    """conv5 of one image and what the page derives from it."""

    input_hw: tuple[int, int]  # (H, W) of the tensor fed to the network
    conv5: np.ndarray  # float32 [C, H5, W5]
    channel_max: np.ndarray  # [C] strongest response of each channel
    ranking: np.ndarray  # [C] channel indices, strongest response first (ties broken by the mean response)
    spp_length: int  # k * M: the same for every input size
    top5: list[Prediction]

    @property
    def conv5_shape(self) -> tuple[int, int, int]:
        """(H5, W5, C), the way the paper writes feature map sizes."""
        c, h, w = self.conv5.shape
        return h, w, c


def prepare_input(model: SPPNet, img: Image.Image, short_side: int | None = 256) -> torch.Tensor:
    """The paper's full-image view: aspect ratio kept, shorter side ``short_side`` (None: the image as it is)."""
    view = img if short_side is None else resize_short_side(img, short_side)
    return to_tensor(view, model.device)


def compute_feature_maps(model: SPPNet, img: Image.Image, short_side: int | None = 256) -> FeatureMaps:
    """Run the model once on the full-image view and collect conv5, the channel ranking and the top-5."""
    x = prepare_input(model, img, short_side)
    with torch.inference_mode():
        logits, conv5 = model.forward_with_features(x)
        channel_max = conv5[0].amax(dim=(1, 2))  # (C, H5, W5) -> (C,)
        # ReLU6 networks saturate many channels at exactly 6: order by mean first, then a stable sort by max.
        by_mean = conv5[0].mean(dim=(1, 2)).argsort(descending=True, stable=True)
        ranking = by_mean[channel_max[by_mean].argsort(descending=True, stable=True)]
    return FeatureMaps(
        input_hw=(x.shape[-2], x.shape[-1]),
        # One device -> host copy per array, after all the work on the device is done.
        conv5=conv5[0].float().cpu().numpy(),
        channel_max=channel_max.float().cpu().numpy(),
        ranking=ranking.cpu().numpy(),
        spp_length=model.spp_length,
        top5=top_predictions(logits[0], model.class_names),
    )
