"""What ``spp-viz app`` runs: ``streamlit run app.py ...`` with the warm-up (``ui.warmup``) begun first.

Run as a file (``python ui/launch.py APP [STREAMLIT FLAGS]``), so its folder's parent, where app.py and the ``ui``
package live, goes first on the path: app.py's ``import ui`` then finds the package the warm-up filled.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    # Streamlit's server modules first, on this thread: the warm-up's thread then imports none of them at the same time.
    import streamlit.web.bootstrap  # noqa: F401
    from streamlit.web.cli import main

    import ui.warmup

    ui.warmup.start()  # while Streamlit starts: the first student finds the network loaded
    sys.argv = ["streamlit", "run", *sys.argv[1:]]
    sys.exit(main())
