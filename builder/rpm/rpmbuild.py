"""rpmbuild in a private _topdir (no ~/.rpmmacros), reproducible, optionally GPG-signed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from builder.console import Console
from builder.errors import InputError
from builder.gpg import AgentKey, SigningKey, sign_rpm_in_place, signing_home
from builder.model import ApplianceMeta, PackageNames
from builder.ova.digests import FileDigests, known_digests
from builder.repro import build_time, source_date_epoch
from builder.rpm.metadata import ImageKind, RpmLayout, render_discovery, render_metadata, rpm_layout
from builder.rpm.spec import render_readme, render_spec
from builder.run import require_tool, run, with_descendants_where_possible

PayloadChoice = Literal["speed", "size"]
# For an image that is not compressed yet (a qcow2 built with --compress none): measured in
# docs/appliance.md ("RPM payload").
PAYLOADS: Mapping[PayloadChoice, str] = {"speed": "w1T0.zstdio", "size": "w19T0.zstdio"}
# An image that is compressed already (a gzip OVA, a qcow2 with compressed clusters) is not
# compressed twice: gzip at level 0 only frames it, as oVirt's own spec does (w0.gzdio), which
# every rpm reads (an "identity" payload, w0.ufdio, leaves PAYLOADCOMPRESSOR unset).
STORED_PAYLOAD = "w0.gzdio"
BUILD_HOST = "he-builder.localdomain"
TOPDIR_SUBDIRS = ("SOURCES", "SPECS", "RPMS", "BUILD", "BUILDROOT", "tmp")


@dataclass(frozen=True)
class BuiltRpm:
    """The package in its directory, and the fingerprint of the key that signed it (None:
    not signed)."""

    path: Path
    signed_by: str | None = None


@dataclass(frozen=True)
class RpmImage:
    """What the RPM ships: the image file, what it is, and what is known about its bytes."""

    path: Path
    kind: ImageKind
    compressed: bool
    digests: FileDigests | None = None


def payload_for(image: RpmImage, choice: PayloadChoice) -> str:
    return STORED_PAYLOAD if image.compressed else PAYLOADS[choice]


def rpm_defines(top: Path, payload: str, epoch: int | None) -> list[str]:
    defines = {
        "_topdir": str(top), "_sourcedir": str(top / "SOURCES"), "_rpmdir": str(top / "RPMS"),
        "_builddir": str(top / "BUILD"), "_buildrootdir": str(top / "BUILDROOT"),
        "_tmppath": str(top / "tmp"), "_buildhost": BUILD_HOST,
        "_binary_payload": payload, "_build_id_links": "none",
        # /usr/share/doc/NAME as on Fedora and EL (Debian's rpm would add -VERSION).
        "_docdir_fmt": "%%{NAME}",
        "__os_install_post": "%{nil}",
        "_rpmfilename": "%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
    }
    if epoch is not None:
        defines |= {"use_source_date_epoch_as_buildtime": "1",
                    "clamp_mtime_to_source_date_epoch": "1"}
    return [arg for key, value in defines.items() for arg in ("--define", f"{key} {value}")]


def build_rpm(image: RpmImage, meta: ApplianceMeta, names: PackageNames, out_dir: Path, *,
              payload: PayloadChoice, sign_key: SigningKey | AgentKey | None, console: Console,
              env: Mapping[str, str]) -> BuiltRpm:
    """Build `<package>-<version>-<release>.noarch.rpm` holding `image` into `out_dir`, signed
    with `sign_key` when given (builder.gpg: a key file in a private GnuPG home, its agent
    stopped after, or a key the operator's gpg-agent holds unlocked; with SOURCE_DATE_EPOCH,
    the signature carries that time, so a rebuild is the same bytes).

    The image's digests are taken from `image.digests` (the packing stage computed them) or
    from the sidecar kept beside it; the file is read again only when neither is there."""
    require_tool("rpmbuild", package="rpm")
    if not image.path.is_file():
        raise InputError(f"appliance image not found: {image.path}")
    layout = rpm_layout(image.kind, meta, names)
    digests = image.digests or known_digests(image.path)
    built_at = build_time(env)
    chosen = payload_for(image, payload)
    epoch = source_date_epoch(env)
    with contextlib.ExitStack() as cleanup:
        # The key is imported and tried first: a key or passphrase that cannot sign stops the
        # stage before rpmbuild runs.
        signer = (None if sign_key is None else
                  cleanup.enter_context(signing_home(sign_key, env, signature_time=epoch)))
        top = Path(cleanup.enter_context(
            tempfile.TemporaryDirectory(prefix=".rpmbuild-", dir=out_dir)))
        spec = stage_sources(top, image.path, layout, meta=meta, names=names, digests=digests,
                             built_at=built_at)
        console.note(f"rpmbuild {layout.package} ({chosen})")
        run_rpmbuild(top, spec, chosen, epoch)
        built = top / "RPMS" / f"{layout.package}-{meta.version}-{meta.release}.noarch.rpm"
        if signer is not None:
            console.note(f"signing with key {signer.key_id}")
            sign_rpm_in_place(signer, built)
        final = out_dir / built.name
        built.replace(final)
    return BuiltRpm(final, None if signer is None else signer.fingerprint)


def run_rpmbuild(top: Path, spec: Path, payload: str, epoch: int | None) -> None:
    """rpmbuild -bb in `top`, as the first process of a PID namespace where one can be made:
    killed with he-build, it takes its build scripts (the %install shell and whatever it
    runs) with it, so nothing writes on into a directory the next build sweeps."""
    rpmbuild = require_tool("rpmbuild", package="rpm")
    run(with_descendants_where_possible([rpmbuild, "-bb", *rpm_defines(top, payload, epoch),
                                         str(spec)]),
        env={"SOURCE_DATE_EPOCH": str(epoch)} if epoch is not None else {})


def make_topdir(top: Path) -> None:
    """The directories `rpm_defines` points rpmbuild at, under `top`."""
    for sub in TOPDIR_SUBDIRS:
        (top / sub).mkdir(parents=True)


def stage_sources(top: Path, image: Path, layout: RpmLayout, *, meta: ApplianceMeta,
                  names: PackageNames, digests: FileDigests, built_at: int) -> Path:
    make_topdir(top)
    sources = top / "SOURCES"
    try:
        os.link(image, sources / image.name)
    except OSError:
        shutil.copyfile(image, sources / image.name)
    (sources / layout.metadata_file).write_bytes(render_metadata(layout, meta, digests,
                                                                 built_at))
    (sources / layout.discovery_file).write_bytes(render_discovery(layout, digests.sha1))
    (sources / "README").write_bytes(render_readme(layout, meta, names, digests, built_at))
    spec = top / "SPECS" / f"{layout.package}.spec"
    spec.write_text(render_spec(layout, meta, names, image_source=image.name,
                                built_at=built_at), encoding="utf-8")
    return spec
