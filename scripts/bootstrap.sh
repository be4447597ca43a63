#!/usr/bin/env bash
# Creates .venv with Python >= 3.12 and installs the pinned requirements into it.
# Sourced by scripts/run and scripts/test; re-installs only when a requirements file changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.12 python3.13 python3.14 python3 \
      /root/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
      command -v "$candidate" 2>/dev/null || echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(find_python)" || { echo "Python >= 3.12 is required (set PYTHON=/path/to/python3.12)." >&2; exit 1; }
  echo "==> creating .venv with $PY"
  "$PY" -m venv "$VENV"
fi

wanted="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$wanted" ]; then
  echo "==> installing pinned requirements"
  # Both files are lock files with hashes (generated from requirements*.in; README,
  # "Development"), so pip checks every download against them.
  # (pip's notes about local package mirrors that this machine lacks are filtered out)
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  echo "$wanted" > "$VENV/.installed"
fi
export PATH="$VENV/bin:$PATH"
