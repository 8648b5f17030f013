"""bench/results.md's sections that a bench script writes itself, between its own markers."""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"


def write_section(script: str, text: str, heading: str, results: Path = RESULTS) -> None:
    """Put ``text`` between the ``<!-- bench/SCRIPT: begin -->`` and ``end`` markers, replacing what was there, or
    at the end of the file under ``heading`` the first time."""
    begin, end = f"<!-- bench/{script}: begin -->", f"<!-- bench/{script}: end -->"
    old = results.read_text()
    section = f"{begin}\n{text}\n{end}"
    if begin in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, old, flags=re.S)
    else:
        new = old.rstrip() + f"\n\n## {heading}\n\n" + section + "\n"
    results.write_text(new)


def publish(script: str, heading: str, text: str, report: object, args) -> None:  # noqa: ANN001  (argparse's)
    """What a bench script does with its result: print ``text``, write ``report`` to ``--json`` when given, and put
    ``text`` in results.md's section unless ``--no-write``."""
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if not args.no_write:
        write_section(script, text, heading)
