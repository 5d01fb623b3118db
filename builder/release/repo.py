"""A signed yum/dnf repository (createrepo_c) for the release's RPMs, with its public key and
a .repo file, laid out atomically and reproducibly for a fixed SOURCE_DATE_EPOCH."""

from __future__ import annotations

import configparser
import io
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.atomic import staged_dir
from builder.errors import InputError, IntegrityError
from builder.gpg import Signer, export_public_key, sign_detached, verify_detached
from builder.release.gates import check_rpm_signature
from builder.run import require_tool, run

PACKAGES_DIR = "Packages"
REPODATA_DIR = "repodata"
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
URL_RE = re.compile(r"^(https?|file)://[^\s\"'<>\\]+$")


@dataclass(frozen=True)
class RepoOptions:
    """What the repository and its .repo file are called, and where they will be served.

    `revision` (SOURCE_DATE_EPOCH) fixes repomd's revision, every timestamp in the metadata
    and the packages' recorded mtimes: the same RPMs then give the same metadata bytes."""

    repo_id: str
    name: str
    base_url: str
    key_name: str = "RPM-GPG-KEY-he-builder"
    revision: int | None = None
    # sqlite databases are for yum 3 (EL7); dnf reads only the XML metadata.
    sqlite: bool = False


@dataclass(frozen=True)
class Repository:
    """A finished repository and the files a client needs from it."""

    root: Path
    packages: tuple[Path, ...]
    repomd: Path
    repomd_signature: Path
    public_key: Path
    repo_file: Path
    fingerprint: str


def check_options(options: RepoOptions) -> None:
    """Refuse values that would break (or inject into) the .repo file, one line each."""
    if not REPO_ID_RE.match(options.repo_id):
        raise InputError(f"repository id {options.repo_id!r}: letters, digits and _.:- only")
    if not options.name.strip() or any(c in options.name for c in "\r\n"):
        raise InputError("repository name: one non-empty line")
    if not URL_RE.match(options.base_url):
        raise InputError(f"repository base URL {options.base_url!r}: an http(s):// or file:// "
                         "URL without spaces or quotes")
    if not FILE_NAME_RE.match(options.key_name):
        raise InputError(f"public key name {options.key_name!r}: a plain file name")


def check_rpms(rpms: Sequence[Path]) -> None:
    if not rpms:
        raise InputError("a repository needs at least one RPM")
    names: dict[str, Path] = {}
    for rpm in rpms:
        if not rpm.is_file() or rpm.suffix != ".rpm":
            raise InputError(f"not an RPM file: {rpm}")
        if rpm.name in names:
            raise InputError(f"two RPMs named {rpm.name}: {names[rpm.name]} and {rpm}")
        names[rpm.name] = rpm


def build_repository(rpms: Sequence[Path], dest: Path, *, signer: Signer,
                     options: RepoOptions) -> Repository:
    """Lay out `dest` (replaced whole, at once) as a repository holding `rpms`, each of
    which must already be signed by `signer`'s key; sign its repomd.xml and publish the
    public key and a .repo file beside it."""
    require_tool("createrepo_c", package="createrepo-c")
    check_options(options)
    check_rpms(rpms)
    with staged_dir(dest) as root:
        root.chmod(0o755)  # served as is: mkdtemp made it private
        public_key = export_public_key(signer, root / options.key_name)
        copy_packages(rpms, root / PACKAGES_DIR, options.revision)
        check_signatures(sorted((root / PACKAGES_DIR).iterdir()), public_key)
        run_createrepo(root, options)
        repomd = root / REPODATA_DIR / "repomd.xml"
        signature = sign_detached(signer, repomd)
        verify_detached(signature, repomd, public_key)
        write_repo_file(root / f"{options.repo_id}.repo", options)
    return Repository(
        root=dest,
        packages=tuple(sorted(dest / PACKAGES_DIR / rpm.name for rpm in rpms)),
        repomd=dest / REPODATA_DIR / "repomd.xml",
        repomd_signature=dest / REPODATA_DIR / "repomd.xml.asc",
        public_key=dest / options.key_name,
        repo_file=dest / f"{options.repo_id}.repo",
        fingerprint=signer.fingerprint,
    )


def copy_packages(rpms: Sequence[Path], packages: Path, revision: int | None) -> None:
    """Copies, not links: createrepo_c records each file's mtime, which is set here to
    `revision`, and a hard link would change the caller's file too."""
    packages.mkdir()
    for rpm in rpms:
        copy = packages / rpm.name
        shutil.copyfile(rpm, copy)
        copy.chmod(0o644)
        if revision is not None:
            os.utime(copy, (revision, revision))


def check_signatures(rpms: Sequence[Path], public_key: Path) -> None:
    """Publish nothing a client with `gpgcheck=1` and this key would refuse."""
    for rpm in rpms:
        result = check_rpm_signature(rpm, public_key)
        if not result.passed:
            raise IntegrityError(f"{rpm.name}: {result.detail}",
                                 hint="sign the RPM with the repository's key first")


def createrepo_argv(root: Path, options: RepoOptions) -> list[str]:
    argv = ["createrepo_c", "--quiet", "--checksum", "sha256", "--workers", "1",
            "--database" if options.sqlite else "--no-database"]
    if options.revision is not None:
        argv += ["--revision", str(options.revision), "--set-timestamp-to-revision"]
    return [*argv, str(root)]


def run_createrepo(root: Path, options: RepoOptions) -> None:
    run(createrepo_argv(root, options))
    if not (root / REPODATA_DIR / "repomd.xml").is_file():
        raise IntegrityError(f"createrepo_c wrote no repodata/repomd.xml in {root}")


def render_repo_file(options: RepoOptions) -> str:
    """The .repo stanza a host drops into /etc/yum.repos.d/: both checks on, the key from
    the repository itself."""
    config = configparser.RawConfigParser()
    config[options.repo_id] = {
        "name": options.name,
        "baseurl": options.base_url,
        "enabled": "1",
        "gpgcheck": "1",
        "repo_gpgcheck": "1",
        "gpgkey": f"{options.base_url.rstrip('/')}/{options.key_name}",
    }
    text = io.StringIO()
    config.write(text)
    return text.getvalue().rstrip("\n") + "\n"


def write_repo_file(path: Path, options: RepoOptions) -> None:
    path.write_text(render_repo_file(options), encoding="utf-8")
    path.chmod(0o644)
