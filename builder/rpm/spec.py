"""The appliance RPM's spec and README, rendered from Jinja2 templates with escaped values."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, datetime

from builder.model import ApplianceMeta, PackageNames
from builder.ova.digests import FileDigests
from builder.resources import appliance_file
from builder.rpm.metadata import DISCOVERY_DIR, INSTALL_DIR, RpmLayout
from builder.templates import text_environment

TEMPLATES = ("appliance.spec.j2", "README.appliance.j2")
DESCRIPTION_WIDTH = 79  # rpmlint: description-line-too-long beyond 79
HOSTED_ENGINE_TEXT = ("This package contains the prebuilt oVirt Engine appliance image. It is "
                      "intended to be used with hosted-engine setup.")


def spec_text(value: str) -> str:
    """One line of spec text: no newline can start a new tag, no % can expand a macro."""
    flat = " ".join(value.split())
    return flat.replace("%", "%%")


def spec_paragraphs(*paragraphs: str) -> str:
    """Free text for %description: wrapped, escaped, and no line starting with `%` (rpm would
    take `%%post` there, once expanded, for a new section; a leading blank keeps it text)."""
    lines: list[str] = []
    for paragraph in paragraphs:
        if lines:
            lines.append("")
        for line in textwrap.wrap(" ".join(paragraph.split()), DESCRIPTION_WIDTH - 1):
            escaped = line.replace("%", "%%")
            lines.append(f" {escaped}" if escaped.startswith("%") else escaped)
    return "\n".join(lines)


def templates_digest() -> str:
    """Part of the RPM stage's cache key: a template change rebuilds the RPM."""
    digest = hashlib.sha256()
    for name in TEMPLATES:
        digest.update(_template_source(name).encode())
    return digest.hexdigest()


def _template_source(name: str) -> str:
    return appliance_file(name).read_text(encoding="utf-8")


def _render(name: str, **values: object) -> str:
    return text_environment().from_string(_template_source(name)).render(**values)


def render_spec(layout: RpmLayout, meta: ApplianceMeta, names: PackageNames, *,
                image_source: str, built_at: int) -> str:
    return _render(
        "appliance.spec.j2", package=layout.package, version=meta.version,
        release=meta.release, summary=spec_text(layout.summary), license=names.license,
        image_source=spec_text(image_source), image_file=layout.image_file,
        metadata_file=layout.metadata_file, discovery_file=layout.discovery_file,
        provides=layout.provides, install_dir=INSTALL_DIR, discovery_dir=DISCOVERY_DIR,
        description=spec_paragraphs(meta.description, HOSTED_ENGINE_TEXT),
        changelog_date=datetime.fromtimestamp(built_at, UTC).strftime("%a %b %d %Y"),
    )


def render_readme(layout: RpmLayout, meta: ApplianceMeta, names: PackageNames,
                  digests: FileDigests, built_at: int) -> bytes:
    text = _render(
        "README.appliance.j2", summary=layout.summary, kind=layout.kind,
        description="\n".join(textwrap.wrap(meta.description, DESCRIPTION_WIDTH)),
        version=meta.version, release=meta.release, package=layout.package,
        distro=names.distro, build_time=datetime.fromtimestamp(built_at, UTC).isoformat(),
        image_path=layout.image_path, metadata_path=f"{INSTALL_DIR}/{layout.metadata_file}",
        discovery_path=layout.discovery_path, memory_mib=meta.memory_mib, vcpus=meta.vcpus,
        firmware_text="UEFI" if meta.firmware == "uefi" else "BIOS",
        kind_text="gzip-compressed OVA, oVirt layout" if layout.kind == "ova" else "qcow2",
        sha256=digests.sha256,
    )
    return text.encode()
