"""The guest-to-host report protocol over hosted-engine-setup's virtio-serial channel: the
channel's name and the lines the guest's runner writes. The runner (builder.seed.runner) speaks
it, the launcher (builder.launch.channel) reads it; both take the words from here.

hosted-engine-setup's own channel name and verdict lines (OVIRT.md) are kept, so a real oVirt
appliance seeded by us behaves as with hosted-engine-setup; the RC line and the tagged report
lines are ours.
"""

from __future__ import annotations

import re

CHANNEL_NAME = "org.ovirt.hosted-engine-setup.0"
PORT_PATH = f"/dev/virtio-ports/{CHANNEL_NAME}"
SUCCESS = "HE_APPLIANCE_ENGINE_SETUP_SUCCESS"
FAIL = "HE_APPLIANCE_ENGINE_SETUP_FAIL"
RESTORE_SUCCESS = "HE_APPLIANCE_ENGINE_RESTORE_SUCCESS"
RESTORE_FAIL = "HE_APPLIANCE_ENGINE_RESTORE_FAIL"
RC_PREFIX = "HE_APPLIANCE_ENGINE_SETUP_RC="
# Lines that report what the guest applied, each `TAG text`.
NETWORK_TAG = "HE_APPLIANCE_NETWORK"
SSH_TAG = "HE_APPLIANCE_SSH"
SCRUB_TAG = "HE_APPLIANCE_SCRUB"

VERDICTS: dict[str, bool] = {SUCCESS: True, FAIL: False, RESTORE_SUCCESS: True,
                             RESTORE_FAIL: False}
RC_LINE = re.compile(r"^HE_APPLIANCE_ENGINE_(?:SETUP|RESTORE)_RC=(-?\d+)$")
