"""The appliance RPMs (the OVA one, and oVirt 4.5.7's qcow2 one): build them reproducibly, and
get the image back out."""

from builder.rpm.extract import extract_appliance_from_rpm
from builder.rpm.rpmbuild import BuiltRpm, PayloadChoice, RpmImage, build_rpm

__all__ = ["BuiltRpm", "PayloadChoice", "RpmImage", "build_rpm", "extract_appliance_from_rpm"]
