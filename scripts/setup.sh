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
  whois
  createrepo-c dnf gpgv groovy default-jre-headless
  pigz node-spdx-license-ids
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

# Debian's cloud-init, unpacked (never installed) with its Python dependencies, for the
# release's cloud-config gate (builder/release/gates.py runs it with the system python3).
unpack_cloud_init() {
  local dest="$1" tmp deps
  [ -e "$dest/.complete" ] && return 0
  echo "==> unpacking Debian's cloud-init into $dest" >&2
  deps=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances cloud-init | grep '^python3-' | grep -vx python3-minimal \
           | sort -u)
  tmp="$(mktemp -d)"
  chmod 0755 "$tmp"  # apt's download sandbox user must be able to write there
  # shellcheck disable=SC2086 # one word per package
  if ! (cd "$tmp" && apt-get download -q cloud-init $deps >/dev/null); then
    "${sudo_cmd[@]}" apt-get update -q
    (cd "$tmp" && apt-get download -q cloud-init $deps >/dev/null)
  fi
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest.partial"; done
  touch "$dest.partial/.complete"
  rm -rf "$dest" "$tmp"
  mv "$dest.partial" "$dest"
}

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
unpack_cloud_init "$venv/opt/cloud-init"
