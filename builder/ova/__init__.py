"""The appliance OVA: pack a disk with its OVF into a tar, verify one, extract its disk."""

from builder.ova.pack import OvaLayout, PackedOva, pack_ova
from builder.ova.verify import OvaInfo, check_disk_digest, extract_disk, verify_ova

__all__ = ["OvaInfo", "OvaLayout", "PackedOva", "check_disk_digest", "extract_disk", "pack_ova",
           "verify_ova"]
