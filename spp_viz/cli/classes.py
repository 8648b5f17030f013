"""``spp-viz class export CODE``: a class's results, as the Class page's downloads have them; ``spp-viz class purge``:
delete the classes past their retention now (the server also does it at start and every hour)."""

from __future__ import annotations

import argparse
import json
import sys


def add_class(sub) -> None:
    """``class export CODE``."""
    p = sub.add_parser("class", help="class mode: a class's results from the class database")
    verbs = p.add_subparsers(dest="verb", required=True)
    e = verbs.add_parser("export", help="a class's entries (SPP_VIZ_DATABASE_URL, else SQLite in the cache folder)")
    e.add_argument("code", help="the class's code, as on the teacher's screen")
    e.add_argument("--json", action="store_true", help="the page's JSON download (default: its CSV)")
    e.set_defaults(func=cmd_class_export)
    g = verbs.add_parser("purge", help="delete the classes past their retention date, with their entries, now")
    g.set_defaults(func=cmd_class_purge)


def cmd_class_export(args: argparse.Namespace) -> int:
    from ..classroom import ClassError, ClassStore, DatabaseDown, export, export_csv

    try:
        store = ClassStore()
        info = store.find(args.code, open_only=False)  # a class past its retention is not found, purged or not
        entries = store.entries(info.code)
    except (DatabaseDown, ClassError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(export(entries, info), indent=2))
    else:
        sys.stdout.write(export_csv(entries))
    return 0


def cmd_class_purge(args: argparse.Namespace) -> int:
    from ..classroom import ClassStore, DatabaseDown

    try:
        gone = ClassStore().purge()
    except DatabaseDown as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{gone} class(es) past their retention deleted, with their entries and thumbnails.")
    return 0
