"""``spp-viz models``: the timm and torchvision CNNs this installation accepts, family by family."""

from __future__ import annotations

import argparse
import json

from .. import catalog
from .commands import progress_bar, with_provenance

LIBRARIES = ("torchvision", "timm")


def add_models(sub) -> None:
    """``models``."""
    p = sub.add_parser(
        "models",
        help="the timm and torchvision CNNs this installation accepts, by family: each family's conv5 channels, "
        "stride and receptive field measured on its smallest accepted member (random weights)",
    )
    p.add_argument("--library", choices=LIBRARIES, default=None, help="one library only (default: both)")
    p.add_argument("--family", default=None, help="one family only: the library's module name (resnet, byobnet ...)")
    p.add_argument(
        "--every-name",
        action="store_true",
        help="also every listed name with its family, parameter count, weights and verdict (no weights are read)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_models)


def _families(library: str, only: str | None) -> list[str]:
    found = sorted(set(catalog.families(library).values()))
    if only is None:
        return found
    if only not in found:
        raise ValueError(f"{library} has no family {only!r}; its families: {', '.join(found)}")
    return [only]


def cmd_models(args: argparse.Namespace) -> int:
    libraries = [args.library] if args.library else [lib for lib in LIBRARIES if args.family is None
                                                     or args.family in catalog.families(lib).values()]  # fmt: skip
    if not libraries:
        raise ValueError(f"neither library has a family {args.family!r}")
    jobs = [(lib, fam) for lib in libraries for fam in _families(lib, args.family)]
    measured, n = [], len(jobs)
    with progress_bar("building each family's smallest member") as progress:
        for i, (lib, fam) in enumerate(jobs):
            measured.append(catalog.representative(fam, lib, lambda name, done=i / n: progress(done, name)))
        progress(1.0, "done")
    result = {"families": [catalog.as_dict(m) for m in measured]}
    if args.every_name:
        result["names"] = [catalog.as_dict(catalog.entry(f"{lib}:{arch}")) for lib, fam in jobs
                           for arch in catalog.members(lib, fam)]  # fmt: skip
    if args.json:
        print(json.dumps(with_provenance(result, args), indent=2))
        return 0
    for m in measured:
        conv5 = f"conv5 {m.channels} channels, stride {m.stride}, field {m.field}" if m.channels else m.field
        print(f"{m.name:<45} {m.accepted:>3} of {m.members:>3} accepted  {conv5}")
    for e in result.get("names", []):
        print(f"  {e['name']:<45} {'accepted' if not e['refused'] else 'refused: ' + e['refused']}")
    return 0
