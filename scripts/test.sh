#!/usr/bin/env bash
# The whole test suite: lint, types, unit, integration and vm tiers. Installs what it needs first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
exec "$repo/.venv/bin/python" -m pytest "$@"
