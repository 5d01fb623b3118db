"""cloud-init meta-data: an instance-id that follows the seed's content, and the host name."""

from __future__ import annotations

import hashlib

from builder.inventory.models import Site
from builder.repro import stable_uuid
from builder.seed.documents import dump_yaml


def derive_instance_id(
    site: Site, *, user_data: str, network_config: str | None, answers: str = "",
) -> str:
    """The inventory's pinned id, else a uuid5 of everything else the seed carries.

    cloud-init re-runs its per-instance modules only when the id changes, so the id must
    change whenever the content does (a fixed seed would be silently ignored), and only then.
    """
    if site.instance_id:
        return site.instance_id
    parts = (site.hostname, user_data, "" if network_config is None else network_config,
             answers)
    digest = hashlib.sha256()
    for part in parts:
        # Each part hashed on its own: no two different splits give the same input.
        digest.update(hashlib.sha256(part.encode("utf-8")).digest())
    marker = "network-config" if network_config is not None else "no-network-config"
    return str(stable_uuid("seed", marker, digest.hexdigest()))


def render_meta_data(site: Site, instance_id: str) -> str:
    """meta-data text: instance-id and local-hostname."""
    return dump_yaml({"instance-id": instance_id, "local-hostname": site.hostname})
