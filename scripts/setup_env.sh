#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root with compress and its test dependencies.
# torch==2.13.0 is installed first: anything that pulls torch before it would fetch a multi-GB CUDA build.
# The install is redone whenever pyproject.toml changes (its hash is kept in .venv/.compress-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat .venv/.compress-deps 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install --disable-pip-version-check -q torch==2.13.0
  .venv/bin/pip install --disable-pip-version-check -q -e ".[dev]"
  echo "$want" > .venv/.compress-deps
fi
