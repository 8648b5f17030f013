"""``python -m spp_viz``: see spp_viz.cli."""

from .serve import main

raise SystemExit(main())
