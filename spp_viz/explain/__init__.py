"""Per-photo analyses behind the pages: feature maps, pyramid levels, the three views, activations, attributions."""
