"""SPP-net Explorer: spatial pyramid pooling (He et al. 2014, arXiv 1406.4729) for teaching."""

__version__ = "0.1.0"
