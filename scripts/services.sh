#!/usr/bin/env bash
# Start the daemons he-launch needs when no init system runs them (containers, CI machines).
set -euo pipefail
for daemon in virtlogd libvirtd; do
  if ! pgrep -x "$daemon" >/dev/null; then
    echo "==> starting $daemon" >&2
    "$daemon" -d
  fi
done
for _ in $(seq 1 50); do
  [ -S /var/run/libvirt/libvirt-sock ] && exit 0
  sleep 0.2
done
echo "libvirtd did not come up (no /var/run/libvirt/libvirt-sock)" >&2
exit 4
