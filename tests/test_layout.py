"""The project's layout, read with ast: the library's imports form a tree (no cycle, inside functions too, no
streamlit), read bottom-up in the paper's order; pages only lay out; the docs' map lists every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import ROOT

LIB = ROOT / "spp_viz"
# The paper's order, bottom-up, by package: a module may import only modules of its own package or of packages listed
# before it (or modules outside this list, which sit at the bottom: devices, images, stats, paper, progress, weights,
# gallery). The large concepts are packages: explain (per-photo analyses), detection, lab, classroom.
ORDER = [
    "spp_viz.pyramid",
    "spp_viz.pyramid_head",
    "spp_viz.geometry",
    "spp_viz.footprint",
    "spp_viz.split",
    "spp_viz.models",
    "spp_viz.external",
    "spp_viz.catalog",
    "spp_viz.distill",
    "spp_viz.explain",
    "spp_viz.detection",
    "spp_viz.lab",
    "spp_viz.classroom",
    "spp_viz.registry",
    "spp_viz.plots",
    "spp_viz.cli",
    "spp_viz.replicas",
    "spp_viz.serve",
    "spp_viz.__main__",
]
PACKAGES = ("spp_viz.explain", "spp_viz.detection", "spp_viz.lab", "spp_viz.plots", "spp_viz.classroom")
MAX_PAGE_FUNCTION_LINES = 40


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in LIB.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module this file imports, at the top or inside functions, resolved to absolute names."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
            # `from pkg import mod` imports the module pkg.mod when there is one (and a package that imports its own
            # module this way does not import itself).
            found.update(submodules)
            if len(submodules) < len(node.names) or target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = library_modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle among the library's modules, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if state.get(nxt) is None and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_inside_functions_are_seen(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from .other import x\n    import streamlit\n")
    assert imports_of(f, "spp_viz.m", {"spp_viz.other"}) == {"spp_viz.other", "streamlit"}


def test_library_import_graph_has_no_cycle():
    assert find_cycle(graph()) is None


def test_library_never_imports_streamlit():
    offenders = {m for m, imps in graph().items() if any(i.split(".")[0] == "streamlit" for i in imps)}
    assert not offenders


def layer(module: str) -> int:
    for i, name in enumerate(ORDER):
        if module == name or module.startswith(name + "."):
            return i
    return -1  # the leaves: devices, images, stats, paper, progress, weights, gallery, the package itself


def test_library_reads_bottom_up_in_the_papers_order():
    wrong = [
        (m, i)
        for m, imps in graph().items()
        for i in imps
        if i.startswith("spp_viz") and layer(i) > layer(m) and not m.startswith(i + ".")
    ]
    assert not wrong, wrong
    assert all(m in library_modules() for m in ORDER)


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_and_their_modules_say_what_they_hold(package):
    folder = ROOT / package.replace(".", "/")
    for path in [folder / "__init__.py", *sorted(folder.glob("*.py"))]:
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), f"{path.relative_to(ROOT)} has no docstring"


def test_no_module_or_function_is_too_long_to_read():
    long_modules, long_functions = [], []
    for name, path in library_modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append((name, len(text.splitlines())))
        for n in ast.walk(ast.parse(text)):
            length = n.end_lineno - n.lineno + 1 if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) else 0
            if length > MAX_FUNCTION_LINES:
                long_functions.append((name, n.name, length))
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def page_files() -> list[Path]:
    return sorted((ROOT / "pages").glob("*.py"))


def test_there_are_pages():
    assert len(page_files()) >= 8


@pytest.mark.parametrize("page", page_files(), ids=lambda p: p.name)
def test_pages_only_lay_out(page):
    tree = ast.parse(page.read_text())
    long = [
        (n.name, n.end_lineno - n.lineno + 1)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.end_lineno - n.lineno + 1 > MAX_PAGE_FUNCTION_LINES
    ]
    assert not long, f"functions longer than {MAX_PAGE_FUNCTION_LINES} lines: {long}"
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.split(".")[0] == "torch" for m in imported), "pages call the library, never torch"


def test_docs_map_every_library_module():
    section = (ROOT / "docs" / "cli.md").read_text()
    missing = [
        p.relative_to(ROOT).as_posix() for p in LIB.rglob("*.py") if p.relative_to(ROOT).as_posix() not in section
    ]
    missing = [m for m in missing if not m.endswith(("__main__.py", "__init__.py"))]
    assert not missing, f"docs/cli.md's map lacks {missing}"


def test_the_servers_thread_only_classes_load_without_streamlit():
    """The job queue and the model shelf are plain threads-and-locks code: importing them pulls in no Streamlit."""
    import subprocess
    import sys

    code = "import sys, ui.job_queue, ui.model_shelf; print('streamlit' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


# --- rules a program can check (issue 47's guards): no history in code, no reach into another module's private
# names, one place that words a verdict, no path outside the repository in what a user reads.
APP_CODE = [*sorted(LIB.rglob("*.py")), *sorted((ROOT / "ui").glob("*.py")), *page_files(), ROOT / "app.py"]


def test_code_says_why_not_its_history():
    tagged = [f"{p.relative_to(ROOT)}:{i}" for p in APP_CODE for i, line in enumerate(p.read_text().splitlines(), 1)
              if re.search(r"\(issue \d+\)", line)]  # fmt: skip
    assert not tagged, tagged


def test_no_module_imports_another_modules_private_names():
    reached = []
    for path in APP_CODE:
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module != "__future__":
                reached += [
                    f"{path.relative_to(ROOT)}: {a.name}"
                    for a in n.names
                    # gettext's `_` (spp_viz.i18n) is the one conventional exception
                    if a.name.startswith("_") and not a.name.startswith("__") and a.name != "_"
                ]
    assert not reached, reached


def test_only_verdicts_words_a_verdict():
    """The words of a verdict live in spp_viz/verdicts.py; other modules may explain the rule in a docstring."""
    worded = []
    for path in sorted(LIB.rglob("*.py")):
        if path.name == "verdicts.py":
            continue
        tree = ast.parse(path.read_text())
        holders = [n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body]
        docs = {id(n.body[0].value) for n in holders if isinstance(n.body[0], ast.Expr)}
        strings = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        worded += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in strings
                   if id(n) not in docs and "clear difference" in n.value.lower()]  # fmt: skip
    assert not worded, worded


def test_what_a_user_reads_names_no_folder_outside_the_repository():
    read = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [p.relative_to(ROOT).as_posix() for p in read if "shared/spp-paper" in p.read_text()]
    assert not found, found


def test_the_default_networks_name_is_written_once():
    from spp_viz.settings import DEFAULT_MODEL

    written = [f"{p.relative_to(ROOT)}" for p in APP_CODE for n in ast.walk(ast.parse(p.read_text()))
               if isinstance(n, ast.Constant) and n.value == DEFAULT_MODEL]  # fmt: skip
    assert written == ["spp_viz/settings.py"], written


@pytest.mark.parametrize("page", page_files(), ids=lambda p: p.name)
def test_every_page_starts_with_the_one_call_before_any_widget(page):
    main = next(n for n in ast.parse(page.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "main")
    first = main.body[0]
    assert ast.unparse(first) == "ui.start_page()", f"{page.name}: main() starts with {ast.unparse(first)!r}"


def test_the_legacy_pages_workaround_finds_what_it_uses_in_the_pinned_streamlit():
    """ui.session.leave_legacy_pages_mode reads Streamlit's internals: an upgrade that moves them fails here."""
    import streamlit
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_run_context import (
        FragmentThreadState,
        ScriptRunContext,
        ThreadState,
    )

    pinned = next(line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("streamlit=="))  # fmt: skip
    assert streamlit.__version__ == pinned
    assert isinstance(PagesManager.uses_pages_directory, bool | None)
    assert callable(ThreadState.get) and "active_script_hash" in FragmentThreadState.__dataclass_fields__
    assert "pages_manager" in ScriptRunContext.__dataclass_fields__
    assert hasattr(PagesManager, "main_script_hash")
