#!/usr/bin/env bash
# Install what the project needs on Debian 12: apt packages, then a virtualenv in .venv that
# also sees Debian's python3-guestfs and python3-libvirt. Safe to re-run: does only what is missing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config
  python3-guestfs python3-libvirt libvirt-dev
  libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
  libguestfs-tools linux-image-cloud-amd64
  rpm rpmlint xorriso genisoimage cloud-image-utils debootstrap e2fsprogs
  busybox-static cpio zstd grub-pc-bin gnupg libxml2-utils python3-jsonschema virt-v2v
  grub-efi-amd64-bin dosfstools mtools ovmf diffoscope-minimal
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating virtualenv $venv" >&2
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.installed-$(sha256sum "$repo/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "==> installing the project into $venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$repo[dev]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
