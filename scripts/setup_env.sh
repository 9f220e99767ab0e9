#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root with compress and its test dependencies.
# torch==2.13.0 is installed first: anything that pulls torch before it would fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import compress, pytest" 2>/dev/null; then
  .venv/bin/pip install --disable-pip-version-check -q torch==2.13.0
  .venv/bin/pip install --disable-pip-version-check -q -e ".[dev]"
fi
