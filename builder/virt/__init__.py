"""The one libvirt adapter and the domain XML object model."""
