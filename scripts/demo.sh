#!/usr/bin/env bash
# The main job on the bundled example: build the demo appliance (disk -> OVA -> RPM), render the
# seed of site dc1, boot it under libvirt and print engine-setup's exit status. Safe to re-run:
# stages are cached, the seed is re-rendered atomically, the previous demo domain is replaced.
#
#   bash scripts/demo.sh [OUT]      (default OUT: ./out)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/out}"
bin="$repo/.venv/bin"

bash "$repo/scripts/setup.sh"
bash "$repo/scripts/services.sh"

echo "==> he-build appliance --recipe debian-test" >&2
"$bin/he-build" appliance --recipe debian-test --out "$out/appliance"

# Git checks the demo secrets out readable by everybody (0644); he-build warns about a secret file
# that group or others can read, so the demo makes them 0600 first, as a real site's would be.
chmod 600 "$repo"/examples/secrets/dc*-password

echo "==> he-build seed --site dc1" >&2
"$bin/he-build" seed --site dc1 --out "$out/seeds"

rpm_file="$(find "$out/appliance" -maxdepth 1 -name 'ovirt-engine-appliance-*.noarch.rpm' | sort | tail -n 1)"
# The demo VM gets no NIC: nothing in it can reach beyond this machine. The appliance boots,
# cloud-init applies the seed and runs engine-setup, whose output streams back over virtio-serial.
echo "==> he-launch --site dc1" >&2
status=0
"$bin/he-launch" --appliance "$rpm_file" --seed "$out/seeds/dc1/seed.iso" --site dc1 \
  --no-network --replace || status=$?
echo "engine-setup exit status: $status"
exit "$status"
