"""The leaves of the release pipeline: signing, the yum repository, checksums, SBOM,
provenance and gates. Each is a small typed function over paths; nothing here has a CLI."""
