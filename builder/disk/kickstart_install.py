"""The kickstart backend: the CentOS installer, booted from an install tree in a libvirt VM,
installs the appliance from the rendered kickstart onto a new disk."""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field

from builder.atomic import staged_file
from builder.console import Console
from builder.disk.backend import BuildContext
from builder.disk.installer import InstallerSpec, run_installer
from builder.disk.kickstart import (
    AUTHSELECT_BY_VERSION,
    DEFAULT_DISK_GIB,
    DEFAULT_TEMPLATE,
    AuthselectProfile,
    KickstartInputs,
    KickstartVersion,
    Repo,
    check_finishes,
    check_inputs,
    kickstart_available,
    render_kickstart,
    validate_kickstart,
)
from builder.disk.recipe import (
    option_flag,
    option_problem,
    refused_option,
    refused_options,
    validate_options,
)
from builder.errors import InputError
from builder.inventory.counts import Count
from builder.inventory.source import Path_
from builder.model import ApplianceMeta, BuiltDisk, DiskFormat
from builder.pipeline.store import StageCache, hash_inputs
from builder.repro import sha256_file
from builder.resources import KICKSTART_DIR
from builder.virt.domain import VirtChoice

if TYPE_CHECKING:
    from builder.disk.recipe import Recipe

PXEBOOT = ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img")
# Characters a URL may carry onto the kernel command line: RFC 3986, without quotes or spaces.
_CMDLINE_URL = r"^(https?|ftp|nfs)://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$"
DOWNLOAD_TIMEOUT_S = 60
# Bumped when the installation changes in a way the inputs below cannot see.
LAYOUT_VERSION = "1"


class RepoOption(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str


class KickstartOptions(BaseModel):
    """The `options:` of a kickstart recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    install_tree: str = Field(min_length=1)
    kickstart: Path | None = None
    repo_url: str | None = Field(default=None, pattern=_CMDLINE_URL)
    timezone: str = "Etc/UTC"
    root_password_hash: str | None = None
    disk_size_gib: Count = Field(default=DEFAULT_DISK_GIB, le=16384)
    disk_format: Literal["raw", "qcow2"] = "raw"
    repos: tuple[RepoOption, ...] = ()
    extra_packages: tuple[str, ...] = ()
    release_package: str = "centos-release-ovirt45"
    # The kickstart syntax the installer reads (RHEL9: CentOS Stream 9); the rendered
    # kickstart is checked against it.
    kickstart_version: KickstartVersion = "RHEL9"
    authselect_profile: AuthselectProfile | None = None  # None: the version's own
    libvirt_uri: str = "qemu:///system"
    virt_type: VirtChoice = "auto"
    network: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    memory_mib: Count = Field(default=3072, ge=128, le=1 << 20)
    vcpus: Count = Field(default=2, ge=1, le=64)
    timeout_s: Count = Field(default=7200, ge=5)
    vm_dir: Path = Path("/var/tmp/he-build")


@dataclass(frozen=True)
class InstallTree:
    """Where the installer comes from: an http(s) URL or a local directory (CentOS layout)."""

    url: str | None
    directory: Path | None

    def describe(self) -> str:
        return self.url if self.url is not None else str(self.directory)


def from_recipe(recipe: Recipe, env: Mapping[str, str]) -> KickstartBackend:
    """The registry entry: validate the options, find the tree, render and check the kickstart
    (`env` is not needed: the root password is given as a crypt hash). A bad value is reported
    at its line in the recipe, or by its flag when the command line gave it."""
    options = validate_options(KickstartOptions, recipe)
    tree = install_tree_of(recipe, options)
    repo_url = options.repo_url or tree.url
    if repo_url is None:
        raise refused_option(recipe, ("install_tree",), "a directory, so repo_url (--repo-url) "
                             "is needed too: the URL the installer fetches stage2 and packages "
                             "from")
    kickstart = render_recipe_kickstart(recipe, options, repo_url)
    return KickstartBackend(meta=recipe.meta, options=options, tree=tree, repo_url=repo_url,
                            kickstart=kickstart)


def install_tree_of(recipe: Recipe, options: KickstartOptions) -> InstallTree:
    try:
        return parse_install_tree(options.install_tree, recipe.path.parent)
    except InputError as exc:
        raise refused_option(recipe, ("install_tree",), exc.message) from exc


def parse_install_tree(value: str, base: Path) -> InstallTree:
    """A URL as given (checked for the kernel command line), or a directory holding
    images/pxeboot/{vmlinuz,initrd.img} (relative paths start at the recipe's directory)."""
    if "://" in value:
        url = value if value.endswith("/") else value + "/"
        if not re.match(_CMDLINE_URL, url) or not url.startswith(("http://", "https://")):
            raise InputError(f"not an http(s) URL: {value!r}")
        return InstallTree(url=url, directory=None)
    directory = (base / value).resolve()
    missing = [rel for rel in PXEBOOT if not (directory / rel).is_file()]
    if missing:
        raise InputError(f"{directory} has no {', '.join(missing)}")
    return InstallTree(url=None, directory=directory)


def render_recipe_kickstart(recipe: Recipe, options: KickstartOptions, repo_url: str) -> str:
    """The kickstart the installer gets, checked by pykickstart when it is installed."""
    text = load_kickstart(recipe, options, repo_url)
    if kickstart_available():
        try:
            handler = validate_kickstart(text, version=options.kickstart_version)
        except InputError as exc:
            raise refused_kickstart(recipe, options, exc, at_line=True) from exc
        try:
            check_finishes(handler)
        except InputError as exc:
            raise refused_kickstart(recipe, options, exc, at_line=False) from exc
    return text


def refused_kickstart(recipe: Recipe, options: KickstartOptions, exc: InputError, *,
                      at_line: bool) -> InputError:
    """A refusal of the kickstart, named after the file its line numbers count in: the
    kickstart as given, else the text rendered from a template (which --render-kickstart
    writes: the hint says so when the refusal is `at_line`)."""
    path = kickstart_file(recipe, options)
    if path is not None and not is_template(path):
        origin = (f"{option_flag('kickstart')} {path}" if "kickstart" in recipe.overrides
                  else f"recipe {recipe.path}: kickstart {path}")
        return InputError(f"{origin}: {exc.message}", problems=exc.problems)
    template = "the bundled template" if path is None else str(path)
    hint = ("the line numbers are the rendered kickstart's: --render-kickstart FILE writes it"
            if at_line else None)
    return InputError(f"recipe {recipe.path}: the kickstart rendered from {template}: "
                      f"{exc.message}", problems=exc.problems, hint=hint)


def kickstart_file(recipe: Recipe, options: KickstartOptions) -> Path | None:
    """The recipe's `kickstart:` (or --kickstart's) file; None for the bundled template."""
    if options.kickstart is None:
        return None
    return (recipe.path.parent / options.kickstart).resolve()


def is_template(kickstart: Path) -> bool:
    """A recipe's `kickstart:` ending in `.j2` is a template, rendered with the recipe's values;
    any other file is a finished kickstart, used as it is."""
    return kickstart.suffix == ".j2"


def load_kickstart(recipe: Recipe, options: KickstartOptions, repo_url: str) -> str:
    """The bundled template or the recipe's `kickstart:` (`is_template`)."""
    template_dir, template = KICKSTART_DIR, DEFAULT_TEMPLATE
    path = kickstart_file(recipe, options)
    if path is not None:
        if not path.is_file():
            raise refused_option(recipe, ("kickstart",), f"not found: {path}")
        if not is_template(path):
            try:
                return path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise refused_option(recipe, ("kickstart",),
                                     f"{path} is not UTF-8 text") from exc
        template_dir, template = path.parent, path.name
    inputs = kickstart_inputs(options, repo_url)
    problems = check_inputs(inputs)
    if problems:
        raise refused_options(recipe.path, [
            option_problem(recipe, option_of(problem.field, options), problem.message)
            for problem in problems])
    try:
        return render_kickstart(inputs, template_dir=template_dir, include_dirs=(KICKSTART_DIR,),
                                template=template)
    except InputError as exc:
        raise in_recipe(recipe, exc) from exc


def in_recipe(recipe: Recipe, exc: InputError) -> InputError:
    """A refusal of the rendered kickstart or its template, which has no line in the recipe:
    `recipe FILE: ...`."""
    return InputError(f"recipe {recipe.path}: {exc.message}", problems=exc.problems)


def kickstart_inputs(options: KickstartOptions, repo_url: str) -> KickstartInputs:
    return KickstartInputs(
        install_tree=repo_url, timezone=options.timezone,
        root_password_hash=options.root_password_hash, disk_size_gib=options.disk_size_gib,
        repos=tuple(Repo(r.name, r.url) for r in options.repos),
        extra_packages=options.extra_packages, release_package=options.release_package,
        authselect_profile=(options.authselect_profile
                            or AUTHSELECT_BY_VERSION[options.kickstart_version]))


def option_of(field: Path_, options: KickstartOptions) -> Path_:
    """The recipe option a KickstartInputs field comes from (its install_tree is repo_url
    when the recipe sets one)."""
    return ("repo_url",) if field == ("install_tree",) and options.repo_url else field


@dataclass
class KickstartBackend:
    """Install tree + rendered kickstart -> installer VM -> the installed disk."""

    meta: ApplianceMeta
    options: KickstartOptions
    tree: InstallTree
    repo_url: str
    kickstart: str
    name: str = "kickstart"

    def cmdline(self) -> tuple[str, ...]:
        """What the installer needs beyond the kickstart: where stage2 and packages are."""
        stage2 = self.tree.url or self.repo_url
        return (f"inst.stage2={stage2}", f"inst.repo={self.repo_url}")

    def cache_key(self) -> str:
        return hash_inputs({
            "backend": self.name, "layout": LAYOUT_VERSION,
            "kickstart": hashlib.sha256(self.kickstart.encode()).hexdigest(),
            "tree": self.tree_identity(), "cmdline": self.cmdline(),
            "disk_size_gib": self.options.disk_size_gib, "disk_format": self.options.disk_format,
        })

    def tree_identity(self) -> str | list[str]:
        # A URL names a compose (use a dated one): its files are taken as immutable.
        if self.tree.directory is None:
            return str(self.tree.url)
        return [sha256_file(self.tree.directory / rel) for rel in PXEBOOT]

    def build_disk(self, ctx: BuildContext) -> BuiltDisk:
        kernel, initrd = fetch_install_tree(self.tree, ctx.cache_dir, ctx.console)
        key = self.cache_key()
        fmt: DiskFormat = self.options.disk_format
        dest = ctx.work_dir / f"disk.{fmt}"
        run_installer(self.installer_spec(kernel, initrd, key), dest, ctx.console)
        return BuiltDisk(dest, fmt, self.meta, key)

    def installer_spec(self, kernel: Path, initrd: Path, key: str) -> InstallerSpec:
        o = self.options
        return InstallerSpec(
            name=f"he-installer-{key[:12]}-{os.getpid()}", kernel=kernel, initrd=initrd,
            kickstart=self.kickstart, cmdline=self.cmdline(), disk_size_gib=o.disk_size_gib,
            disk_format=o.disk_format, memory_mib=o.memory_mib, vcpus=o.vcpus,
            libvirt_uri=o.libvirt_uri, virt_type=o.virt_type, network=o.network,
            timeout_s=o.timeout_s, vm_dir=o.vm_dir,
            log=o.vm_dir / f"installer-{key[:12]}.log")


def fetch_install_tree(tree: InstallTree, cache_dir: Path, console: Console) -> tuple[Path, Path]:
    """The tree's kernel and initrd: a directory's own files, or downloads cached by URL."""
    if tree.directory is not None:
        return tree.directory / PXEBOOT[0], tree.directory / PXEBOOT[1]
    url = str(tree.url)
    cache = StageCache(cache_dir)
    key = hash_inputs({"url": url})
    if cache.lookup("install-tree", key) is None:
        with cache.store("install-tree", key) as entry:
            for rel in PXEBOOT:
                download(urljoin(url, rel), entry / Path(rel).name, console)
            (entry / "url").write_text(url + "\n")
    entry = cache.entry("install-tree", key)
    return entry / "vmlinuz", entry / "initrd.img"


def download(url: str, dest: Path, console: Console) -> None:
    """Stream `url` into `dest` with progress; a missing file is bad input (the tree is wrong)."""
    try:
        response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310
    except urllib.error.HTTPError as exc:
        raise InputError(f"install tree: {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"install tree: cannot fetch {url}: {reason}") from exc
    total = int(response.headers.get("Content-Length") or 0) or None
    with response, staged_file(dest) as temp, temp.open("wb") as out:
        copy_with_progress(response, out, total, f"fetching {url}", console)


def copy_with_progress(source: IO[bytes], out: IO[bytes], total: int | None, label: str,
                       console: Console) -> None:
    """Copy with a progress bar; a read failure is the server's (InputError), a write ours."""
    done = 0
    while True:
        try:
            chunk = source.read(1 << 20)
        except OSError as exc:
            raise InputError(f"install tree: {label} failed after {done} bytes: {exc}") from exc
        if not chunk:
            break
        out.write(chunk)
        done += len(chunk)
        console.progress(label, done, total)
    if total is not None and done != total:
        raise InputError(f"install tree: {label}: got {done} of {total} bytes")
