"""rpmbuild in a private _topdir (no ~/.rpmmacros), reproducible, optionally GPG-signed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from builder.appliance.backend import ApplianceMeta
from builder.console import Console
from builder.errors import InputError
from builder.repro import build_time, sha256_file, source_date_epoch
from builder.rpm.spec import render_metadata, render_spec
from builder.run import require_tool, run

PayloadChoice = Literal["speed", "size"]
# The OVA's qcow2 clusters are already compressed, so the payload is squeezed only lightly:
# measured in docs/appliance.md ("RPM payload").
PAYLOADS: Mapping[PayloadChoice, str] = {"speed": "w1T0.zstdio", "size": "w19T0.zstdio"}
BUILD_HOST = "he-builder.localdomain"


def rpm_defines(top: Path, payload: PayloadChoice, epoch: int | None) -> list[str]:
    defines = {
        "_topdir": str(top), "_sourcedir": str(top / "SOURCES"), "_rpmdir": str(top / "RPMS"),
        "_builddir": str(top / "BUILD"), "_buildrootdir": str(top / "BUILDROOT"),
        "_tmppath": str(top / "tmp"), "_buildhost": BUILD_HOST,
        "_binary_payload": PAYLOADS[payload], "_build_id_links": "none",
        "__os_install_post": "%{nil}",
        "_rpmfilename": "%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
    }
    if epoch is not None:
        defines |= {"use_source_date_epoch_as_buildtime": "1",
                    "clamp_mtime_to_source_date_epoch": "1"}
    return [arg for key, value in defines.items() for arg in ("--define", f"{key} {value}")]


def build_rpm(ova: Path, meta: ApplianceMeta, out_dir: Path, *, payload: PayloadChoice,
              sign_key: Path | None, console: Console, env: Mapping[str, str]) -> Path:
    """Build `<name>-<version>-<release>.noarch.rpm` holding `ova` into `out_dir`."""
    require_tool("rpmbuild", package="rpm")
    if not ova.is_file():
        raise InputError(f"OVA not found: {ova}")
    built_at = build_time(env)
    with tempfile.TemporaryDirectory(prefix=".rpmbuild-", dir=out_dir) as tmp:
        top = Path(tmp)
        spec = stage_sources(top, ova, meta, built_at)
        console.note(f"rpmbuild ({PAYLOADS[payload]})")
        epoch = source_date_epoch(env)
        run(["rpmbuild", "-bb", *rpm_defines(top, payload, epoch), spec],
            env={"SOURCE_DATE_EPOCH": str(epoch)} if epoch is not None else {})
        built = top / "RPMS" / f"{meta.name}-{meta.version}-{meta.release}.noarch.rpm"
        if sign_key is not None:
            sign_rpm(built, sign_key, console)
        final = out_dir / built.name
        built.replace(final)
    return final


def stage_sources(top: Path, ova: Path, meta: ApplianceMeta, built_at: int) -> Path:
    for sub in ("SOURCES", "SPECS", "RPMS", "BUILD", "BUILDROOT", "tmp"):
        (top / sub).mkdir()
    sources = top / "SOURCES"
    try:
        os.link(ova, sources / ova.name)
    except OSError:
        shutil.copyfile(ova, sources / ova.name)
    metadata = f"{meta.name}.json"
    (sources / metadata).write_bytes(render_metadata(meta, ova.name, sha256_file(ova), built_at))
    spec = top / "SPECS" / f"{meta.name}.spec"
    spec.write_text(render_spec(meta, ova.name, metadata, built_at), encoding="utf-8")
    return spec


def sign_rpm(rpm: Path, key_file: Path, console: Console) -> None:
    """rpmsign with a private GNUPGHOME holding only the given (passphrase-less) secret key.

    The home is a short path in the system temp dir: gpg-agent's socket path must stay under
    the 108-byte limit of a unix socket name."""
    gpg_path = require_tool("gpg", package="gnupg")
    require_tool("rpmsign", package="rpm")
    if not key_file.is_file():
        raise InputError(f"signing key not found: {key_file}")
    with tempfile.TemporaryDirectory(prefix="he-gpg-") as home:
        _sign_with_home(rpm, key_file, Path(home), gpg_path, console)


def _sign_with_home(rpm: Path, key_file: Path, gnupg_home: Path, gpg_path: str,
                    console: Console) -> None:
    gpg = ["gpg", "--homedir", str(gnupg_home), "--batch"]
    run([*gpg, "--import", key_file])
    listing = run([*gpg, "--with-colons", "--list-secret-keys"]).text
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    if not fingerprints:
        raise InputError(f"{key_file} holds no secret key to sign with")
    console.note(f"signing with key {fingerprints[0][-16:]}")
    try:
        # Debian's rpm names gpg2, which Debian does not ship: point it at the gpg found.
        run(["rpmsign", "--addsign", "--define", f"__gpg {gpg_path}",
             "--define", "_gpg_sign_cmd_extra_args --batch", "--define", f"_gpg_path {gnupg_home}",
             "--define", f"_gpg_name {fingerprints[0]}", rpm])
    finally:
        # The agent gpg started for this private home must not outlive it.
        run(["gpgconf", "--homedir", str(gnupg_home), "--kill", "gpg-agent"], check=False)
