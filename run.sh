#!/usr/bin/env bash
# One entry point for a fresh Linux machine with Python 3.11 and pip:
#   bash run.sh app    create .venv if needed, install requirements.txt, then `spp-viz app` (Streamlit)
#   bash run.sh serve --replicas N [--port P]
#                      N app servers behind HAProxy on one port (`spp-viz serve`); needs Debian's haproxy package
#                      (sudo apt-get install haproxy); Ctrl-C stops them all
#   bash run.sh test   create .venv if needed, install requirements-dev.txt, then run the test suite:
#                      the default tier; --fast: no browser, AppTest or training; --all: the release tier too
#   bash run.sh docs   build the documentation into site/ (mkdocs build --strict)
#   bash run.sh catalogs
#                      the translations: extract every `_()` message (pybabel extract -F babel.cfg) and merge the
#                      new ones into each spp_viz/locales/<lang>/LC_MESSAGES/spp_viz.po (pybabel update); then
#                      translate the empty msgstr entries (docs/translating.md)
# Extra arguments go to streamlit or pytest. Set PYTHON to choose the interpreter that makes the venv.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${SPP_VIZ_VENV:-.venv}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for p in python3.11 python3; do command -v "$p" >/dev/null && { echo "$p"; return; }; done
  echo "run.sh: no python3.11 or python3 on PATH" >&2; exit 1
}

# Install $1 into the venv unless this exact set of requirement files was installed already.
ensure_venv() {
  local reqs=$1
  [ -x "$VENV/bin/python" ] || "$(pick_python)" -m venv "$VENV"
  local hash stamp
  hash=$(cat requirements*.txt pyproject.toml | sha256sum | cut -c1-16)
  stamp="$VENV/.installed-$(basename "$reqs" .txt)-$hash"
  # requirements-dev.txt starts with -r requirements.txt: after `run.sh test`, `run.sh app` has nothing to install
  # (pip took 4-6 s to say so, on every start of the app: most of a cold start measured in issue 31).
  if [ "$reqs" = requirements.txt ] && [ -f "$VENV/.installed-requirements-dev-$hash" ]; then stamp="$VENV/.installed-requirements-dev-$hash"; fi
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$reqs"
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    touch "$stamp"
  fi
}

# The deployment files' scanners (checkov, hadolint, kubernetes-validate) pin their own versions of packages the app
# uses too: they live in a virtual environment of their own, made and filled once per requirements-scan.txt.
ensure_scan_venv() {
  local scan=${SPP_VIZ_SCAN_VENV:-.venv-scan} hash
  hash=$(sha256sum requirements-scan.txt | cut -c1-16)
  [ -f "$scan/.installed-$hash" ] && return
  [ -x "$scan/bin/python" ] || "$(pick_python)" -m venv "$scan"
  "$scan/bin/python" -m pip install --quiet --upgrade pip
  "$scan/bin/python" -m pip install --quiet -r requirements-scan.txt
  touch "$scan/.installed-$hash"
}

# glibc gives each thread its own malloc arena, and Streamlit runs each session's script on a thread of its own:
# with 8 browser sessions the server grew by 2,219 MB with the default and by 1,198 MB with 2 arenas (test_load.py).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}

cmd=${1:-}
shift || true
case "$cmd" in
  app)
    ensure_venv requirements.txt
    exec "$VENV/bin/spp-viz" app "$@"
    ;;
  serve)
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || {
      echo "run.sh serve: HAProxy is not installed: sudo apt-get install haproxy (Debian, Ubuntu)" >&2; exit 2; }
    ensure_venv requirements.txt
    exec "$VENV/bin/spp-viz" serve "$@"
    ;;
  test)
    ensure_venv requirements-dev.txt
    ensure_scan_venv
    # Three tiers (README, docs/tests.md): --fast for the edit-test loop, the default, and --all for a release.
    tier=()
    case "${1:-}" in
      --fast) shift; tier=(-m "not browser and not apptest and not training and not release") ;;
      --all) shift; export SPP_VIZ_FULL_FUZZ=1; tier=(-m "release or not release") ;;
    esac
    exec "$VENV/bin/python" -m pytest "${tier[@]}" "$@"
    ;;
  docs)
    ensure_venv requirements-dev.txt
    NO_MKDOCS_2_WARNING=1 exec "$VENV/bin/mkdocs" build --strict "$@"
    ;;
  catalogs)
    ensure_venv requirements-dev.txt
    "$VENV/bin/pybabel" extract -F babel.cfg -k lazy_gettext -k N_ --no-location --sort-output -o spp_viz/locales/spp_viz.pot \
      --project "SPP-net Explorer" --copyright-holder "SPP-net Explorer's authors" .
    "$VENV/bin/pybabel" update -i spp_viz/locales/spp_viz.pot -d spp_viz/locales -D spp_viz -w 120 \
      --ignore-obsolete --no-fuzzy-matching
    ;;
  *)
    echo "usage: bash run.sh app|serve --replicas N|test [--fast|--all]|docs|catalogs [args...]" >&2
    exit 2
    ;;
esac
