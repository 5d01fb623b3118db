"""The appliance RPM: wrap an OVA in a reproducible noarch package, and get it back out."""

from builder.rpm.build import PayloadChoice, build_rpm
from builder.rpm.extract import extract_ova_from_rpm

__all__ = ["PayloadChoice", "build_rpm", "extract_ova_from_rpm"]
