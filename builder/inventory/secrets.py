"""Resolve a site's secret references (env:NAME, file:PATH, prompt); values stay out of logs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.errors import InputError
from builder.inventory.models import Site

SECRET_LABELS = {"root_password": "root password", "admin_password": "engine admin password"}


@dataclass(frozen=True)
class SiteSecrets:
    """A site's resolved secrets; repr and str never show the values."""

    root_password: str
    admin_password: str

    def __repr__(self) -> str:
        return "SiteSecrets(root_password='***', admin_password='***')"

    __str__ = __repr__


def resolve_secrets(
    site: Site,
    *,
    base_dir: Path,
    env: Mapping[str, str],
    prompt: Callable[[str], str] | None,
) -> SiteSecrets:
    """Both secrets of `site`; relative `file:` paths are taken from `base_dir`."""
    values = {
        name: resolve_reference(site.name, name, getattr(site, name),
                                base_dir=base_dir, env=env, prompt=prompt)
        for name in ("root_password", "admin_password")
    }
    return SiteSecrets(**values)


def resolve_reference(
    site: str,
    field: str,
    reference: str,
    *,
    base_dir: Path,
    env: Mapping[str, str],
    prompt: Callable[[str], str] | None,
) -> str:
    where = f"site {site}: {field}"
    if reference.startswith("env:"):
        return read_env(where, reference.removeprefix("env:"), env)
    if reference.startswith("file:"):
        return read_file(where, base_dir / Path(reference.removeprefix("file:")).expanduser())
    if prompt is None:
        raise InputError(f"{where}: 'prompt' needs a terminal",
                         hint="run it interactively, or use env:NAME or file:PATH")
    return check_value(where, "the answer", prompt(f"site {site}: {SECRET_LABELS[field]}"))


def read_env(where: str, name: str, env: Mapping[str, str]) -> str:
    value = env.get(name, "")
    if not value:
        raise InputError(f"{where}: environment variable {name} is not set")
    return value


def read_file(where: str, path: Path) -> str:
    """The file's text without one trailing newline (as `echo pw > file` leaves it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise InputError(f"{where}: cannot read {path}: {reason}") from None
    return check_value(where, f"file {path}", text.removesuffix("\n"))


def check_value(where: str, source: str, value: str) -> str:
    if not value:
        raise InputError(f"{where}: {source} is empty")
    return value
