"""``python -m spp_viz``: see spp_viz.cli."""

from .cli import main

raise SystemExit(main())
