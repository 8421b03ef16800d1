#!/usr/bin/env bash
# Sets up the project on a fresh machine (Python 3.11 + apt): a venv with every dependency,
# and Debian's chromium for the browser tests (never a browser download).
# MARTS_PRODUCTION=1 installs the package alone (the docker image: no test tools, no browser).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "${MARTS_PRODUCTION:-}" ]; then
  # A deployment image: the package alone, no test tools, no browser, every dependency at the
  # version the lock names (a constraint: the resolver may not pick another).
  .venv/bin/python -m pip install --quiet -c docker/requirements.lock .
  exit 0
fi
.venv/bin/python -m pip install --quiet -e '.[dev]'
if ! command -v chromium >/dev/null && [ -z "${MARTS_NO_BROWSER:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # optional: a busy or unreachable apt must not undo the rest of the setup (it waits up to
    # 5 minutes for another apt to release its lock, then says what is missing)
    if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
             chromium >/dev/null; }; then
      echo "setup.sh: chromium could not be installed (apt busy or unreachable); everything" \
           "else is set up; the browser tests need it: apt-get install chromium" >&2
    fi
  else
    echo "setup.sh: chromium is missing and cannot be installed here (needs root + apt);" \
         "the browser tests need it: apt-get install chromium" >&2
  fi
fi
