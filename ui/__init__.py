"""The Streamlit glue between spp_viz (which knows nothing of Streamlit) and the pages.

session: this session's choices (``Subject``: the model and image, frozen and hashable) and Streamlit's legacy mode;
cache: the only place that caches; sidebar: the shared sidebar and server panel; page: what a page asks for first.
"""

from .cache import (
    cached_attributions,
    cached_comparison,
    cached_feature_maps,
    cached_fixed_length,
    cached_spp_detection,
    current_lock,
    decode_image,
    get_model,
    vector_files,
)
from .page import NOTES, current_image, current_model
from .session import Context, Subject, context, image_key, leave_legacy_pages_mode, session_uploads
from .sidebar import LAB_DIR, sidebar

__all__ = [
    "LAB_DIR",
    "NOTES",
    "Context",
    "Subject",
    "cached_attributions",
    "cached_comparison",
    "cached_feature_maps",
    "cached_fixed_length",
    "cached_spp_detection",
    "context",
    "current_image",
    "current_lock",
    "current_model",
    "decode_image",
    "get_model",
    "image_key",
    "leave_legacy_pages_mode",
    "session_uploads",
    "sidebar",
    "vector_files",
]
