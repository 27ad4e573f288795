#!/usr/bin/env bash
# Set up pathgen on a fresh machine, then run one thing:
#   scripts/dev.sh demo [ARGS]   install, then `pathgen demo` on the packaged sample slide (offline, tiny models)
#   scripts/dev.sh test [ARGS]   install, then the test suite (pytest)
#   scripts/dev.sh shell         install, then print how to activate the environment
# The virtual environment lives in $PATHGEN_VENV (default .venv). It is (re)filled only when
# pyproject.toml changed since the last install, so the second call starts in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-test}
shift || true
VENV=${PATHGEN_VENV:-.venv}
PY=${PYTHON:-python3}
# CI pins the exact torch build that lies on this machine's disk; users may have newer ones.
TORCH_PINS=${PATHGEN_TORCH_PINS:-"torch==2.14.1 torchvision==0.29.1"}

deps_key=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
  echo "pathgen: creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
if [ "$(cat "$VENV/.pathgen-deps" 2>/dev/null || true)" != "$deps_key" ]; then
  echo "pathgen: installing dependencies into $VENV (torch first: several GB, a few minutes)" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $TORCH_PINS
  "$VENV/bin/pip" install -q -e '.[dev,faiss,ray,s3,video,review,agents]'
  echo "$deps_key" > "$VENV/.pathgen-deps"
else
  # Point the editable install at this checkout (a cached venv may have served another clone).
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null
fi

# The gallery test renders the exported page in a real headless Chromium (Debian's package).
if [ "$what" = test ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null 2>&1; then
  echo "pathgen: installing Debian's chromium for the gallery test" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "pathgen: chromium could not be installed; the gallery test will skip and say so" >&2
fi

case "$what" in
  demo) exec "$VENV/bin/pathgen" demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
  shell) echo "source $VENV/bin/activate" ;;
  *) echo "usage: scripts/dev.sh demo|test|shell [ARGS]" >&2; exit 2 ;;
esac
