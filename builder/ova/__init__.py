"""The appliance OVA: pack a disk with its OVF into a (gzip) tar, verify one, unpack its disk."""

from builder.ova.pack import OvaLayout, PackedOva, pack_ova
from builder.ova.verify import OvaInfo, extract_disk, unpack_ova, verify_ova

__all__ = ["OvaInfo", "OvaLayout", "PackedOva", "extract_disk", "pack_ova", "unpack_ova",
           "verify_ova"]
