"""The appliance RPM spec, rendered from its Jinja2 template with escaped values."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from importlib import resources

import jinja2

from builder.appliance.backend import ApplianceMeta

INSTALL_DIR = "/usr/share/ovirt-engine-appliance"
TEMPLATE = "appliance.spec.j2"


def spec_text(value: str) -> str:
    """One line of spec text: no newline can start a new tag, no % can expand a macro."""
    flat = " ".join(value.split())
    return flat.replace("%", "%%")


def spec_template_digest() -> str:
    """Part of the RPM stage's cache key: a template change rebuilds the RPM."""
    source = resources.files("builder").joinpath("data", "appliance", TEMPLATE).read_bytes()
    return hashlib.sha256(source).hexdigest()


def render_spec(meta: ApplianceMeta, ova_file: str, metadata_file: str, built_at: int) -> str:
    source = resources.files("builder").joinpath("data", "appliance", TEMPLATE).read_text()
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined,  # noqa: S701
                             keep_trailing_newline=True)
    return env.from_string(source).render(
        name=meta.name, version=meta.version, release=meta.release,
        summary=spec_text(meta.description.splitlines()[0] if meta.description else meta.name),
        description=spec_text(meta.description), ova_file=spec_text(ova_file),
        metadata_file=spec_text(metadata_file), install_dir=INSTALL_DIR,
        changelog_date=datetime.fromtimestamp(built_at, UTC).strftime("%a %b %d %Y"),
    )


def render_metadata(meta: ApplianceMeta, ova_file: str, ova_sha256: str, built_at: int) -> bytes:
    """The small JSON file installed beside the OVA."""
    data = {
        "name": meta.name, "version": meta.version, "release": meta.release,
        "ova": ova_file, "sha256": ova_sha256, "memory_mib": meta.memory_mib,
        "vcpus": meta.vcpus,
        "build_time": datetime.fromtimestamp(built_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
