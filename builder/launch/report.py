"""What one launch found out, filled in as it goes (so a failure reports how far it got)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SecretScan:
    """The overlay check after a successful setup: bytes read, copies of password lines."""

    file: str
    bytes_read: int
    copies: int


@dataclass
class LaunchReport:
    """The launch's outcome; `as_dict` is the --json document."""

    site: str | None
    domain: str
    console_log: str
    transcript: str
    durations: dict[str, float] = field(default_factory=dict)
    firmware: str | None = None
    virt_type: str | None = None
    virt_reason: str | None = None
    exit_status: int | None = None
    network: list[str] = field(default_factory=list)
    ssh: list[str] = field(default_factory=list)
    scrub: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seed_ejected: bool | None = None
    eject_attempts: int | None = None
    secret_scan: SecretScan | None = None
    url: str | None = None
    health: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def closing_lines(self) -> list[str]:
        """What a person reads at the end: the verdict, where the engine or the logs are."""
        timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.durations.items())
        if self.succeeded:
            lines = [f"engine-setup succeeded on {self.domain} ({self.virt_type})"]
            if self.url:
                lines.append(f"the engine: {self.url}")
        else:
            lines = [f"engine-setup failed with exit status {self.exit_status}",
                     f"console log: {self.console_log}",
                     f"engine-setup output: {self.transcript}"]
        lines.append(f"phases: {timing}")
        return lines
