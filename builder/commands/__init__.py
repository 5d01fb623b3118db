"""Subcommands of he-build: argument parsing and result shaping only."""
