"""Fixtures shared by every tier."""

from tests.fixtures.libvirt import isolated_network, libvirt_uri

__all__ = ["isolated_network", "libvirt_uri"]
