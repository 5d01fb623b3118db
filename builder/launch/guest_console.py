"""What the guest's serial console says about the configuration it was given.

cloud-init validates its configuration against its schema at boot (before 23.4, e.g. Debian
12's 22.4, the appliance's cloud.cfg and cloud.cfg.d merged with the seed's user-data; from 23.4
on, the user-data alone); what it refuses it only logs, to the console among other places, and
goes on. The launch reads the console log once the wait for the guest's report is over (however
it ended), so an operator hears of it. Only the fact is kept: the lines themselves may quote
configuration values, and the console log stays where it is (mode 0600) for whoever needs them.
"""

from __future__ import annotations

from pathlib import Path

# cloud-init's words (cloudinit/config/schema.py) when its configuration fails the schema.
SCHEMA_REFUSAL = b"Invalid cloud-config provided"


def schema_refusals(console_log: Path) -> int:
    """How many times the guest's cloud-init called its configuration invalid (0 without a
    log: a launch that never started a domain has none)."""
    try:
        with console_log.open("rb") as log:
            return sum(1 for line in log if SCHEMA_REFUSAL in line)
    except FileNotFoundError:
        return 0
