# Shared by scripts/*: make sure .venv exists and holds this project with the given extra.
# Usage: . scripts/_venv.sh EXTRA   (EXTRA is "", "test" or "dev")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SYNCLEDGER_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
_extra="${1:-}"
_stamp="$VENV/.installed-${_extra:-base}"
# Reinstall only when pyproject.toml changed since the last install for this extra.
if [ ! -f "$_stamp" ] || [ "$ROOT/pyproject.toml" -nt "$_stamp" ]; then
    if [ -n "$_extra" ]; then
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$_extra]"
    else
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT"
    fi
    touch "$_stamp"
fi
export PATH="$VENV/bin:$PATH"
