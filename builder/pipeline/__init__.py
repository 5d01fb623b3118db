"""Pipelines: tables of content-addressed stages (the appliance build, the release)."""
