"""The Streamlit glue between spp_viz (which knows nothing of Streamlit) and the pages.

session: this session's choices (``Subject``: the model and image, frozen and hashable) and Streamlit's legacy mode;
cache: the models and every per-photo result (the Class page's glue, the any-CNN box and the queue cache only their
own server-wide objects); sidebar_box: the student's choices in the sidebar; server_panel: the teacher's Server panel;
recovery: a lost session and its notice; page: what a page asks for first; jobs: the page side of the server's bounded
queue for heavy work; heavy: the pages' heavy computations, each through that queue. job_queue and model_shelf hold
the thread-only classes (the queue, the models held), free of Streamlit.

The names below are imported on first use (PEP 562), so that ``import ui.job_queue`` or ``import ui.model_shelf``
loads no Streamlit; ``ui.context()`` on a page imports ``ui.session`` then.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "heavy": None,  # a submodule
    "classroom": None,  # a submodule: the Class page's glue
    "language": None,  # a submodule: this session's language
    **dict.fromkeys(
        ["approaches_picture", "cached_channel_overlay", "cached_class_zip", "cached_comparison",
         "cached_feature_maps", "cached_fixed_length", "cached_level_shares", "cached_maps_npy", "cached_shuffle",
         "cached_spp_detection",
         "cached_views_shown", "decode_image", "detection_sets", "get_model", "vector_files"],
        "cache",
    ),
    **dict.fromkeys(
        ["NOTES", "current_image", "current_model", "measured_field_note", "page_paths", "response_maps",
         "smallest_short_side", "start_page"],
        "page",
    ),
    **dict.fromkeys(
        ["MAX_REMEMBERED_UPLOADS", "MAX_SESSION_UPLOAD_MB", "Context", "Subject", "add_gallery_uploads", "context",
         "image_key", "leave_legacy_pages_mode", "session_uploads"],
        "session",
    ),
    **dict.fromkeys(["IMAGE_TYPES", "LAB_DIR", "PRIVATE_LAB_DIR", "server_paths", "sidebar"], "sidebar_box"),
    "md": "text",
    "stop_button": "jobs",
}  # fmt: skip

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ui' has no attribute {name!r}")
    module = importlib.import_module(f".{_WHERE[name] or name}", __name__)
    value = module if _WHERE[name] is None else getattr(module, name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
