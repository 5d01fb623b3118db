"""Appliance disks: one module per backend (debian stand-in, customize, kickstart install)."""
