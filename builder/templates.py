"""The one Jinja environment factory: every template he-builder renders is plain text (an RPM
spec, a kickstart), never HTML, so autoescaping is off; a missing value is an error, never an
empty string; the template's last newline is kept byte for byte.

The kickstart passes `finalize`, which refuses any value its quoting filters did not produce.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2


def text_environment(*, template_dirs: Sequence[Path] = (),
                     filters: Mapping[str, Callable[..., Any]] | None = None,
                     finalize: Callable[[Any], Any] | None = None) -> jinja2.Environment:
    """A Jinja environment for plain-text output, loading from `template_dirs` (in order)."""
    loader = jinja2.FileSystemLoader([str(d) for d in template_dirs]) if template_dirs else None
    env = jinja2.Environment(
        loader=loader,
        autoescape=False,  # noqa: S701 - spec files and kickstarts, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters.update(filters or {})
    return env
