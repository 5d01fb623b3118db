"""The guest-side runner of engine-setup: a fixed shell script that reports over virtio-serial."""

from __future__ import annotations

import functools
from importlib import resources

import jinja2

# hosted-engine-setup's channel and report strings (see OVIRT.md), kept so a real oVirt
# appliance seeded by us behaves as with hosted-engine-setup.
CHANNEL_NAME = "org.ovirt.hosted-engine-setup.0"
PORT_PATH = f"/dev/virtio-ports/{CHANNEL_NAME}"
SUCCESS = "HE_APPLIANCE_ENGINE_SETUP_SUCCESS"
FAIL = "HE_APPLIANCE_ENGINE_SETUP_FAIL"
RC_PREFIX = "HE_APPLIANCE_ENGINE_SETUP_RC="
NETWORK_TAG = "HE_APPLIANCE_NETWORK"

ENGINE_SETUP = "/usr/bin/engine-setup"
APPLIANCE_ANSWERS = "/root/ovirt-engine-answers"
SEED_ANSWERS = "/root/heanswers.conf"
RUNNER_PATH = "/usr/local/sbin/he-run-engine-setup"
FALLBACK_LOG = "/var/log/he-engine-setup.log"
TEMPLATE = "engine-setup-runner.sh.j2"
# Seconds the runner waits for configured interfaces before reporting the network (a DHCP
# interface with no server answering would otherwise hold engine-setup back for minutes).
NETWORK_WAIT_SECONDS = 30


@functools.cache
def render_runner() -> str:
    """The runner script's text: every site gets the same bytes."""
    source = resources.files("builder.seed").joinpath("data", TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 - shell text of constants, not HTML
    return env.from_string(source).render(
        port=PORT_PATH, answers=SEED_ANSWERS, appliance_answers=APPLIANCE_ANSWERS,
        fallback_log=FALLBACK_LOG, network_tag=NETWORK_TAG, engine_setup=ENGINE_SETUP,
        success=SUCCESS, fail=FAIL, rc_prefix=RC_PREFIX, network_wait=NETWORK_WAIT_SECONDS,
    )
