"""The Streamlit glue between spp_viz (which knows nothing of Streamlit) and the pages.

session: this session's choices (``Subject``: the model and image, frozen and hashable) and Streamlit's legacy mode;
cache: the only place that caches; sidebar: the shared sidebar and server panel; page: what a page asks for first;
jobs: the server's bounded queue for heavy work; heavy: the pages' heavy computations, each through that queue.
"""

from . import heavy
from .cache import (
    cached_attributions,
    cached_class_zip,
    cached_comparison,
    cached_feature_maps,
    cached_fixed_length,
    cached_shuffle,
    cached_spp_detection,
    decode_image,
    detection_sets,
    get_model,
    vector_files,
)
from .page import NOTES, current_image, current_model, measured_field_note, response_maps
from .session import (
    MAX_REMEMBERED_UPLOADS,
    MAX_SESSION_UPLOAD_MB,
    Context,
    Subject,
    add_gallery_uploads,
    context,
    image_key,
    leave_legacy_pages_mode,
    session_uploads,
)
from .sidebar import IMAGE_TYPES, LAB_DIR, server_paths, sidebar

__all__ = [
    "IMAGE_TYPES",
    "MAX_REMEMBERED_UPLOADS",
    "MAX_SESSION_UPLOAD_MB",
    "add_gallery_uploads",
    "server_paths",
    "heavy",
    "LAB_DIR",
    "NOTES",
    "Context",
    "Subject",
    "cached_attributions",
    "cached_class_zip",
    "cached_comparison",
    "cached_feature_maps",
    "cached_fixed_length",
    "cached_shuffle",
    "cached_spp_detection",
    "context",
    "current_image",
    "current_model",
    "decode_image",
    "detection_sets",
    "get_model",
    "image_key",
    "leave_legacy_pages_mode",
    "measured_field_note",
    "response_maps",
    "session_uploads",
    "sidebar",
    "vector_files",
]
