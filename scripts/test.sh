#!/usr/bin/env bash
# The whole test suite: lint, types, unit, integration and vm tiers. Installs what it needs first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
# Two workers (tests/lanes.py): the modules on the host's libvirtd one after the other
# in one, everything else in the other.
exec "$repo/.venv/bin/python" -m pytest -n 2 "$@"
