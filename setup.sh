#!/usr/bin/env bash
# Set up MAGE Studio in ./.venv on a fresh Linux machine.
#   ./setup.sh          runtime only (GUI + CLI on the bundled models)
#   ./setup.sh --dev    also the modeling extra (PyTorch, ONNX) and the test tools
set -euo pipefail
cd "$(dirname "$0")"

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# Qt needs a few system libraries even offscreen; Xvfb gives the screenshot test a real window.
qt_libs="libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libglib2.0-0 libxkbcommon0
  fonts-dejavu-core libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0
  libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxcb-xinerama0"
[ "$dev" = 1 ] && qt_libs="$qt_libs xvfb xauth openssl"
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  missing=$(for p in $qt_libs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
  if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  # The CPU build of torch 2.13 is enough for export, import and tests.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev,modeling,download]"
else
  .venv/bin/python -m pip install -q -e .
fi
