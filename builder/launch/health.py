"""The engine's health page: poll it until the engine says its database is up."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from builder.errors import SetupTimeoutError

HEALTHY = "DB Up!Welcome to Health Status!"
POLL_S = 2.0


def health_url(fqdn: str) -> str:
    return f"http://{fqdn}/ovirt-engine/services/health"


def fetch_health(url: str, *, timeout: float = 10.0) -> str | None:
    """The page's text, or None when the engine does not answer (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return bytes(response.read(4096)).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for_health(url: str, timeout: float, *, poll_s: float = POLL_S) -> float:
    """Poll `url` until it shows the healthy text; the seconds it took. SetupTimeoutError if not."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    start = time.monotonic()
    while True:
        text = fetch_health(url, timeout=min(10.0, timeout))
        if text is not None and HEALTHY in text:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise SetupTimeoutError(f"the engine's health page {url} did not answer "
                                    f"{HEALTHY!r} within {timeout:g} s")
        time.sleep(poll_s)
