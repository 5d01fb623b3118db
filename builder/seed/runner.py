"""The guest-side runner of engine-setup: a fixed shell script that brings up the seed's network
profile, runs engine-setup, scrubs the answer file's copies and reports over virtio-serial."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from builder.resources import SEED_RUNNER_TEMPLATE
from builder.seed.iso import VOLUME_ID
from builder.seed.network import NM_KEYFILE, NM_PROFILE
from builder.seed.protocol import (
    FAIL,
    NETWORK_TAG,
    PORT_PATH,
    RC_PREFIX,
    SCRUB_TAG,
    SSH_TAG,
    SUCCESS,
)

# hosted-engine-setup's channel and report strings (see OVIRT.md), kept so a real oVirt
# appliance seeded by us behaves as with hosted-engine-setup.

ENGINE_SETUP = "/usr/bin/engine-setup"
APPLIANCE_ANSWERS = "/root/ovirt-engine-answers"
# Where a seed that carried the answer file in user-data had cloud-init write it.
SEED_ANSWERS = "/root/heanswers.conf"
RUNNER_PATH = "/usr/local/sbin/he-run-engine-setup"
FALLBACK_LOG = "/var/log/he-engine-setup.log"
# Seconds the runner waits for configured interfaces before reporting the network (a DHCP
# interface with no server answering would otherwise hold engine-setup back for minutes).
NETWORK_WAIT_SECONDS = 30
# An nmcli call that hangs (NetworkManager stuck) is cut off after this long.
NM_TIMEOUT_SECONDS = NETWORK_WAIT_SECONDS + 15
# fstrim of a whole engine disk takes seconds; this only bounds a stuck one.
TRIM_TIMEOUT_SECONDS = 600
# A tmpfs on every systemd system: the answer file waits there while engine-setup runs.
MEMORY_DIR = "/run"

CLOUD_DIR = "/var/lib/cloud"
CLOUD_DISABLED = "/etc/cloud/cloud-init.disabled"
# What cloud-init keeps of the user-data in each instance directory (cloudinit/helpers.py:
# raw, MIME-processed, the datasource pickled with it, the merged cloud-config, vendor data,
# and runcmd rendered as a script).
CLOUD_INIT_COPIES = (
    "user-data.txt", "user-data.txt.i", "obj.pkl", "cloud-config.txt", "vendor-data.txt",
    "vendor-data.txt.i", "vendor-data2.txt", "vendor-data2.txt.i", "vendor-cloud-config.txt",
    "vendor2-cloud-config.txt", "scripts/runcmd",
)
# Also searched for the answer file's password lines (besides CLOUD_DIR); /var/lib/ovirt-engine
# holds engine-setup's record of its answers.
SCRUB_SEARCH = ("/var/log", "/root", "/tmp", "/var/tmp", "/etc/cloud", "/var/lib/ovirt-engine",
                "/etc/ovirt-engine-setup.conf.d")
# The answer file's name on the seed ISO (beside user-data, never read by cloud-init).
ANSWERS_ON_SEED = "heanswers.conf"
CLOUD_INIT_UNITS = ("cloud-init-local.service", "cloud-init.service", "cloud-config.service",
                    "cloud-final.service")


# The template's one construct: `{{ name }}`, in Jinja's syntax (editors highlight it, the tests
# render the template with jinja2 too). Filling it needs no template engine on the seed path.
PLACEHOLDER_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
JINJA_START_RE = re.compile(r"\{[{%#]")


@functools.cache
def render_runner() -> str:
    """The runner script's text: every site gets the same bytes."""
    source = SEED_RUNNER_TEMPLATE.read_text("utf-8")
    return fill_placeholders(source, template_values())


def fill_placeholders(source: str, values: Mapping[str, str | int]) -> str:
    """`source` with each `{{ name }}` replaced by `values[name]`: what Jinja renders for such a
    template (StrictUndefined, trailing newline kept). Any other Jinja construct, or a name
    without a value, is a ValueError (the template and this code disagree)."""
    for start in JINJA_START_RE.finditer(source):
        if not PLACEHOLDER_RE.match(source, start.start()):
            line = source.count("\n", 0, start.start()) + 1
            raise ValueError(f"{SEED_RUNNER_TEMPLATE.name}:{line}: "
                             "only {{ name }} placeholders are filled")
    unknown = sorted(set(PLACEHOLDER_RE.findall(source)) - set(values))
    if unknown:
        raise ValueError(f"{SEED_RUNNER_TEMPLATE.name}: no value for {', '.join(unknown)}")
    return PLACEHOLDER_RE.sub(lambda found: str(values[found[1]]), source)


def template_values(**paths: str) -> dict[str, str | int]:
    """What the template is rendered with; `paths` replaces guest paths (tests run the
    script on the build host, inside a scratch directory)."""
    values: dict[str, str | int] = {
        "port": PORT_PATH, "answers": SEED_ANSWERS, "appliance_answers": APPLIANCE_ANSWERS,
        "fallback_log": FALLBACK_LOG, "engine_setup": ENGINE_SETUP, "nm_profile": NM_PROFILE,
        "nm_keyfile": NM_KEYFILE, "cloud_dir": CLOUD_DIR, "cloud_disabled": CLOUD_DISABLED,
        "scrub_search": " ".join(SCRUB_SEARCH), "cloud_init_copies": " ".join(CLOUD_INIT_COPIES),
        "cloud_init_units": " ".join(CLOUD_INIT_UNITS), "secret_dir": MEMORY_DIR,
        "seed_label": VOLUME_ID, "answers_on_seed": ANSWERS_ON_SEED,
        "network_tag": NETWORK_TAG,
        "ssh_tag": SSH_TAG, "scrub_tag": SCRUB_TAG, "success": SUCCESS, "fail": FAIL,
        "rc_prefix": RC_PREFIX, "network_wait": NETWORK_WAIT_SECONDS,
        "nm_timeout": NM_TIMEOUT_SECONDS, "trim_timeout": TRIM_TIMEOUT_SECONDS,
    }
    unknown = set(paths) - set(values)
    if unknown:
        raise KeyError(f"not template values: {sorted(unknown)}")
    values.update(paths)
    return values
