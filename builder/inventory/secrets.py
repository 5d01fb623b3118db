"""Resolve a site's secret references (env:NAME, file:PATH, prompt); values stay out of logs.

The `file:` policy: a path is taken from the inventory's directory unless absolute; `~` is never
expanded; the file, once every symlink is resolved, must lie inside the inventory's directory or
inside a directory the operator allowed (`--allow-secrets-from DIR`); a relative path may not
climb out of the inventory's directory with `..`; only a regular file of at most 4 KiB is read;
a file readable by group or others gets a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import InputError
from builder.inventory.files import FileRefused, read_regular_file
from builder.inventory.models import Site

SECRET_LABELS = {"root_password": "root password", "admin_password": "engine admin password"}
SECRET_FIELDS = ("root_password", "admin_password")
MAX_SECRET_BYTES = 4096
log = logging.getLogger(__name__)
# Where a resolution's warnings go (a file others can read): the log, unless a caller holds
# them until it uses the secrets (builder.seed.ahead reads them ahead of time).
Warn = Callable[[str], None]


def log_warning(message: str) -> None:
    log.warning("%s", message)


@dataclass(frozen=True)
class SiteSecrets:
    """A site's resolved secrets; repr and str never show the values."""

    root_password: str
    admin_password: str

    def __repr__(self) -> str:
        return "SiteSecrets(root_password='***', admin_password='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretFiles:
    """Where `file:` references may point: the inventory's directory and allowed directories."""

    base_dir: Path
    allowed_dirs: tuple[Path, ...] = ()
    # Real paths of the directories secret files were found in: an inventory's secrets are
    # usually a few directories' files, and each is located twice (checked, then read).
    real_dirs: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, base_dir: Path, allow_from: Sequence[Path] = ()) -> SecretFiles:
        """Both resolved (symlinks followed), so containment is checked on real paths."""
        return cls(real(base_dir), tuple(real(path) for path in allow_from))

    def locate(self, text: str, *, must_exist: bool) -> Path:
        """The real path of `file:TEXT`; SecretPathRefused when the policy refuses it.

        With must_exist=False (inventory check) a missing file is fine: only where it would be.
        """
        if text.startswith("~"):
            raise SecretPathRefused("'~' is not expanded; write the path relative to the "
                                    "inventory's directory, or absolute with "
                                    "--allow-secrets-from DIR")
        # Plain strings, not Path objects: an inventory of 1,000 sites locates 4,000 files.
        base = str(self.base_dir)
        written = os.path.normpath(os.path.join(base, text))  # noqa: PTH118
        if not text.startswith("/") and not inside(written, base):
            raise SecretPathRefused(f"climbs out of the inventory's directory {self.base_dir} "
                                    "with '..'; use an absolute path and --allow-secrets-from "
                                    "DIR")
        path = self.real_path(written, strict=must_exist)
        if not any(inside(path, str(root)) for root in (self.base_dir, *self.allowed_dirs)):
            resolved = "" if path == written else f" (it resolves to {path})"
            raise SecretPathRefused(f"outside the inventory's directory {self.base_dir}"
                                    f"{resolved}; allow its directory with "
                                    "--allow-secrets-from DIR")
        return Path(path)

    def real_path(self, written: str, *, strict: bool) -> str:
        """`real(written)`, resolving each directory once: the file itself is looked at every
        time (lstat), and a symlink there is resolved in full."""
        head, tail = os.path.split(written)
        directory = self.real_dirs.get(head)
        if directory is None:
            if not tail or not os.path.isdir(head):  # noqa: PTH112  (strings, see locate)
                return str(real(written, strict=strict))
            directory = self.real_dirs.setdefault(head, str(real(head, strict=True)))
        path = os.path.join(directory, tail)  # noqa: PTH118
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            if not strict:
                return path
        except (OSError, ValueError):
            pass  # real() says why
        else:
            if not stat.S_ISLNK(mode):
                return path
        return str(real(path, strict=strict))


class SecretPathRefused(Exception):
    """A `file:` reference the policy refuses; the message names the path, never a value."""


def real(path: Path | str, *, strict: bool = False) -> Path:
    """`path` made absolute with every existing symlink resolved; SecretPathRefused if strict
    and it does not exist."""
    try:
        return Path(os.path.realpath(path, strict=strict))
    except FileNotFoundError:
        raise SecretPathRefused("does not exist") from None
    except OSError as exc:
        raise SecretPathRefused(exc.strerror or str(exc)) from None
    except ValueError:  # an embedded NUL
        raise SecretPathRefused("not a usable path") from None


def inside(path: str, root: str) -> bool:
    """Whether the normalized absolute `path` is `root` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def reference_problem(reference: str, files: SecretFiles) -> str | None:
    """What `inventory check` can say about a reference without reading any secret."""
    if not reference.startswith("file:"):
        return None
    try:
        files.locate(reference.removeprefix("file:"), must_exist=False)
    except SecretPathRefused as exc:
        return f"{reference}: {exc}"
    return None


def resolve_secrets(
    site: Site,
    *,
    base_dir: Path,
    env: Mapping[str, str],
    prompt: Callable[[str], str] | None,
    allow_from: Sequence[Path] = (),
) -> SiteSecrets:
    """Both secrets of `site`; `file:` paths by the policy above, from `base_dir`."""
    return resolve_site_secrets(site, SecretFiles.create(base_dir, allow_from), env=env,
                                prompt=prompt)


def resolve_site_secrets(site: Site, files: SecretFiles, *, env: Mapping[str, str],
                         prompt: Callable[[str], str] | None,
                         warn: Warn = log_warning) -> SiteSecrets:
    """Both secrets of `site` under a policy already resolved (an inventory's, for each of its
    sites)."""
    values = {
        name: resolve_reference(site.name, name, getattr(site, name),
                                files=files, env=env, prompt=prompt, warn=warn)
        for name in SECRET_FIELDS
    }
    return SiteSecrets(**values)


def resolve_reference(
    site: str,
    field: str,
    reference: str,
    *,
    files: SecretFiles,
    env: Mapping[str, str],
    prompt: Callable[[str], str] | None,
    warn: Warn = log_warning,
) -> str:
    where = f"site {site}: {field}"
    if reference.startswith("env:"):
        return read_env(where, reference.removeprefix("env:"), env)
    if reference.startswith("file:"):
        return read_secret_file(where, reference.removeprefix("file:"), files, warn)
    if prompt is None:
        raise InputError(f"{where}: 'prompt' needs a terminal",
                         hint="run it interactively, or use env:NAME or file:PATH")
    return check_value(where, "the answer", prompt(f"site {site}: {SECRET_LABELS[field]}"))


def read_env(where: str, name: str, env: Mapping[str, str]) -> str:
    value = env.get(name, "")
    if not value:
        raise InputError(f"{where}: environment variable {name} is not set")
    return value


def needs_prompt(site: Site) -> bool:
    """Whether a secret of `site` is asked for at a prompt (neither env: nor file:)."""
    return not all(getattr(site, name).startswith(("env:", "file:")) for name in SECRET_FIELDS)


def read_secret_file(where: str, text: str, files: SecretFiles, warn: Warn = log_warning) -> str:
    """The file's text without one trailing newline (as `echo pw > file` leaves it)."""
    try:
        path = files.locate(text, must_exist=True)
    except SecretPathRefused as exc:
        raise InputError(f"{where}: file:{text}: {exc}") from None
    try:
        found = read_regular_file(path, limit=MAX_SECRET_BYTES, follow_symlinks=False)
        value = found.data.decode("utf-8")
    except FileRefused as exc:
        raise InputError(f"{where}: cannot read {path}: {exc.reason}") from None
    except UnicodeDecodeError:
        raise InputError(f"{where}: cannot read {path}: not UTF-8 text") from None
    if found.mode & 0o044:
        readers = ("group and others" if found.mode & 0o044 == 0o044 else
                   "group" if found.mode & 0o040 else "others")
        warn(f"{where}: {path} is readable by {readers} (mode {found.mode:04o}): chmod 600 it")
    return check_value(where, f"file {path}", value.removesuffix("\n"))


def check_value(where: str, source: str, value: str) -> str:
    if not value:
        raise InputError(f"{where}: {source} is empty")
    return value
