"""Every classification model timm and torchvision list, and what this app makes of it (issue 32).

Each name is built on PyTorch's meta device (its layers and shapes, no weights) and checked: refused when a layer
attends over positions, or (torchvision) when no global pooling of a map feeds its classifier. Then each family's
smallest accepted member is built with random weights: the split checked against its own logits on a probe, any
input size tried, conv5's channels, stride and receptive field measured (``spp-viz models`` does the same for one
family). Writes the per-family table into bench/results.md between the `bench/cnns.py` markers and every name's
outcome to bench/cnns.md (unless --no-write); --json for the figures.

Run: python bench/cnns.py   (about ten minutes on 2 cores, most of it the footprints of the larger families)
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

from sections import write_section  # bench/sections.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NAMES = ROOT / "bench" / "cnns.md"


def kind(reason: str) -> str:
    """A refusal's reason, short, for counting: "attention (Attention2d)", "no pooling of a map" ..."""
    if not reason:
        return "accepted"
    if "attend over positions" in reason:
        layer = re.search(r": (\w+)\)$", reason)
        return f"attention ({layer.group(1)})" if layer else "attention"
    if "takes only some input sizes" in reason:
        return "only some input sizes"
    return reason.split("(")[0].strip()[:60]


def walk(libraries: list[str]) -> dict:
    import timm
    import torch
    import torchvision

    from spp_viz import catalog

    torch.manual_seed(0)
    out: dict = {"libraries": {}, "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                                               "timm": timm.__version__}, "date": str(date.today())}  # fmt: skip
    for lib in libraries:
        t0 = time.perf_counter()
        names = [n for n in catalog.names() if n.startswith(f"{lib}:")]
        entries = []
        for i, n in enumerate(names, 1):
            entries.append(catalog.entry(n))
            if i % 100 == 0 or i == len(names):
                print(f"  {lib}: {i} of {len(names)} names checked on the meta device", file=sys.stderr, flush=True)
        families = sorted({e.family for e in entries})
        measured = []
        for j, fam in enumerate(families, 1):
            m = catalog.representative(fam, lib)
            say = f"  {lib}: family {j} of {len(families)}, {fam}: {m.name}: {m.field[:70]}"
            print(say, file=sys.stderr, flush=True)
            measured.append(m)
        out["libraries"][lib] = {
            "names": [catalog.as_dict(e) for e in entries],
            "families": [catalog.as_dict(m) for m in measured],
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return out


def tables(result: dict) -> tuple[str, str]:
    """(the per-family section for results.md, every name's outcome for cnns.md)."""
    v = result["versions"]
    when = result.get("date", date.today())
    head = (f"`python bench/cnns.py` on {when}, {platform.machine()} CPU, torch {v['torch']}, torchvision "
            f"{v['torchvision']}, timm {v['timm']}.")  # fmt: skip
    lines, names = [head, ""], [f"# Every listed classification model\n\n{head} Written by bench/cnns.py.\n"]
    for lib, r in result["libraries"].items():
        entries, families = r["names"], r["families"]
        counts = collections.Counter(kind(e["refused"]) for e in entries)
        built = [f for f in families if f["channels"]]
        failed = [f for f in families if f["accepted"] and not f["channels"]]
        lines += [
            f"**{lib}**: {len(entries)} names in {len(families)} families; the meta-device check accepts "
            f"{counts['accepted']} and refuses {len(entries) - counts['accepted']} "
            f"({', '.join(f'{k}: {c}' for k, c in counts.most_common() if k != 'accepted')}). "
            f"The smallest accepted member of {len(built)} families built, split and measured; "
            f"{len(failed)} families' smallest member refused when built. ({r['seconds']:.0f} s)",
            "",
            "| family | names | accepted | smallest accepted, built | conv5 channels | stride | receptive field or "
            "outcome |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in families:
            field = f["field"].replace("|", "/")
            field = f"refused: {kind(field.removeprefix('refused: it '))}" if field.startswith("refused") else field
            lines.append(f"| {f['family']} | {f['members']} | {f['accepted']} | {f['name']} | {f['channels'] or ''} | "
                         f"{f['stride'] or ''} | {field} |")  # fmt: skip
        lines.append("")
        names += [f"## {lib}\n", "| name | family | parameters | pretrained weights | outcome |", "|" + "---|" * 5]
        for e in entries:
            params = f"{e['params'] / 1e6:.1f} M" if e["params"] else "?"
            outcome = "accepted" if not e["refused"] else "refused: it " + e["refused"].replace("|", "/")
            names.append(f"| {e['name']} | {e['family']} | {params} | {e['weights']} | {outcome} |")
        names.append("")
    lines.append("Every name's outcome: `bench/cnns.md`. *Accepted* is the meta-device check (structure); "
                 "only the smallest member of each family was built here, so a member that fails its build (as "
                 "HRNet's do, on odd input sizes) counts as accepted in *accepted* but shows its refusal in the last "
                 "column when it is the family's smallest.")  # fmt: skip
    return "\n".join(lines), "\n".join(names) + "\n"


def write(section: str, names: str) -> None:
    write_section("cnns.py", section, "Every CNN the two libraries ship (issue 32)")
    NAMES.write_text(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", choices=("torchvision", "timm"), action="append", help="(default: both)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave bench/ alone")
    parser.add_argument("--from-json", type=Path, help="write the tables of an earlier run's --json instead of a run")
    args = parser.parse_args()
    earlier = args.from_json
    result = json.loads(earlier.read_text()) if earlier else walk(args.library or ["torchvision", "timm"])
    section, names = tables(result)
    print(section)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.no_write:
        write(section, names)


if __name__ == "__main__":
    main()
