"""Build, seed and launch the oVirt hosted-engine appliance."""

__version__ = "0.1.0"
