"""he-launch's bad input, part two: appliances, seeds, inventories, libvirt, storage, signals.

Each row of ROWS is a row of docs/launch.md's "Bad input" table (the unit test of the same name
checks the table against both files): the first lines after `he-launch: `, the exit code, and
no traceback. The appliances are real OVAs packed here from an empty 1 GiB qcow2 (the OVA takes
3 KiB), then broken on purpose; the seeds come from `he-build seed`. Rows run on libvirt's test
driver, which runs no guest; the rows on the real libvirtd (the session's fixture) fail before
any domain starts. The last test throws a few hundred random command lines at he-launch.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from builder.cli.he_build import main as he_build
from builder.cli.he_launch import main
from builder.console import Console
from builder.errors import ExitCode
from builder.model import ApplianceMeta
from builder.ova.pack import render_manifest, write_ova
from builder.seed.iso import write_iso
from builder.virt.domain import DomainSpec, render_domain_xml
from builder.virt.hypervisor import Hypervisor
from tests.fixtures.release import build_small_rpm
from tests.fixtures.signals import INTERRUPTIBLE
from tests.unit.test_launch_bad_input import TEST_URI, TRACEBACK, assert_row, fill

pytestmark = pytest.mark.integration
# Some rows ask for the real libvirtd (the libvirt_uri fixture) only while they run.
USES_LIBVIRTD = True

# Fixed, so that the OVA's member names (UUIDs made from them) stay the same.
META = ApplianceMeta(name="ovirt-engine-appliance", version="4.5", release="1",
                     memory_mib=1024, vcpus=2, description="he-launch bad-input test")
MTIME = 1_700_000_000
UNSET = "HE_LAUNCH_TEST_UNSET"
EXISTING = "r4exists"
BAD, INTEGRITY = ExitCode.BAD_INPUT, ExitCode.INTEGRITY
INTERRUPTED = "interrupted: cleanup ran (logs kept)"


@dataclass(frozen=True)
class Signal:
    """Run he-launch as a process and send it `signum` once its stderr shows `after`."""

    signum: signal.Signals
    after: str


# Where a row runs (environment()): libvirt's test driver; that with a terminal on stdin; the
# real libvirtd running; that with a domain defined, or with a storage qemu cannot reach; a
# tmpfs that is read-only, or small.
Setup = Literal["driver", "terminal", "daemon", "domain", "closed", "read-only", "small"]


@dataclass(frozen=True)
class Row:
    """As tests/unit/test_launch_bad_input.Row, plus where it runs: `setup`, and `process`
    to run he-launch as its own process (real argv bytes, a terminal on stdin, a signal)."""

    label: str
    argv: tuple[str, ...]
    line: str
    code: ExitCode
    more: tuple[str, ...] = ()
    setup: Setup = "driver"
    process: bool = False
    signal: Signal | None = None


def launch(*extra: str, appliance: str = "{w}/tiny.ova", seed: tuple[str, ...] = ("--no-seed",),
           site: str = "dc1", uri: str = TEST_URI) -> tuple[str, ...]:
    """A launch that would start (on the test driver) but for what the row changes; a row
    that gets through anyway fails at once, in the boot timeout (`extra` comes last: it wins)."""
    return ("--appliance", appliance, *seed, "--site", site, "--no-network", "--uri", uri,
            "--storage", "{st}", "--boot-timeout", "1", *extra)


def inventory(name: str) -> tuple[str, ...]:
    return ("--inventory", f"{{w}}/inventory/{name}.yaml")


def problem(name: str, line: int, text: str) -> tuple[str, ...]:
    return (f"inventory/{name}.yaml:{line}: site dc1: {text}",)


SECRET_OUTSIDE = ("root_password: file:outside/root-pw: outside the inventory's directory "
                  "inventory; allow its directory with --allow-secrets-from DIR")
SECRET_CLIMBS = ("root_password: file:../outside/root-pw: climbs out of the inventory's "
                 "directory inventory with '..'; use an absolute path and --allow-secrets-from "
                 "DIR")

ROWS = [
    # The appliance.
    Row("directory without an appliance", launch(appliance="{w}/emptydir"),
        "error: no appliance OVA or qcow2 in emptydir", BAD),
    Row("text file named .ova", launch(appliance="{w}/text.ova"),
        "error: text.ova is not a readable OVA: truncated header", INTEGRITY),
    Row("empty file", launch(appliance="{w}/empty.ova"),
        "error: empty.ova is not a readable OVA: empty file", INTEGRITY),
    Row("truncated OVA", launch(appliance="{w}/cut.ova"),
        "error: cut.ova is not a readable OVA: Compressed file ended before the end-of-stream "
        "marker was reached", INTEGRITY),
    Row("gzip that is not a tar", launch(appliance="{w}/gzip-text.ova"),
        "error: gzip-text.ova is not a readable OVA: invalid header", INTEGRITY),
    Row("tar without an OVF", launch(appliance="{w}/no-ovf.ova"),
        "error: OVA must hold exactly one .ovf, found 0", INTEGRITY),
    Row("OVF that is not XML", launch(appliance="{w}/not-xml.ova"),
        "error: master/vms/UUID/UUID.ovf is not well-formed XML: Couldn't find end of Start Tag "
        "Envelope line 1, line 1, column 10 (<string>, line 1)", INTEGRITY),
    Row("OVF hosted-engine would misread", launch(appliance="{w}/misread.ova"),
        "error: master/vms/UUID/UUID.ovf: hosted-engine would read 2 MB of memory, the memory "
        "Item says 1024 (another Item's VirtualQuantity comes first)", INTEGRITY),
    Row("OVF disk reference with a quote", launch(appliance="{w}/quote.ova"),
        "error: ovirt-engine-appliance.ovf lacks a field the appliance needs: "
        "'/ovf:Envelope/ovf:References/ovf:File[@ovf:id=$ref]/@ovf:href'", INTEGRITY),
    Row("tampered disk", launch(appliance="{w}/tampered.ova"),
        "error: checksum mismatch for ovirt-engine-appliance-disk1.qcow2: the OVA was modified",
        INTEGRITY),
    Row("RPM holding no appliance", launch(appliance="{w}/hello.rpm"),
        "error: hello.rpm holds 0 appliance images under /usr/share/ovirt-engine-appliance, "
        "not one", BAD),
    Row("file named .rpm that is not an RPM", launch(appliance="{w}/text.rpm"),
        "error: rpm2archive exited with 1: argument is not an RPM package",
        ExitCode.COMMAND_FAILED),
    Row("qcow2 without its metadata", launch(appliance="{w}/bare/tiny.qcow2"),
        "error: no appliance metadata beside bare/tiny.qcow2: memory, vCPUs and firmware are "
        "not known", BAD),
    # The seed.
    Row("seed that is not an ISO", launch(seed=("--seed", "{w}/text.iso")),
        "error: text.iso is not a readable ISO 9660 image: Failed to read entire volume "
        "descriptor", BAD),
    Row("seed its manifest does not describe", launch(seed=("--seed", "{w}/changed/seed.iso")),
        "error: changed/seed.iso is not the ISO its manifest.json describes (changed after "
        "he-build seed wrote it)", INTEGRITY),
    Row("--mac other than the seed's",
        launch("--mac", "00:16:3e:00:00:01", seed=("--seed", "{w}/seeds/dc1/seed.iso")),
        "error: --mac 00:16:3e:00:00:01 is not the MAC the seed configures (00:16:3e:66:a9:ee): "
        "the guest would not find its network", BAD),
    Row("--seed of another site than --site",
        launch(seed=("--seed", "{w}/seeds/dc1/seed.iso"), site="dc2"),
        "error: --seed seeds/dc1/seed.iso: rendered for site dc1, not --site dc2", BAD),
    Row("--health-check, seed naming no FQDN",
        launch("--health-check", seed=("--seed", "{w}/foreign.iso")),
        "error: --health-check: no engine FQDN to poll", BAD),
    # The inventory route.
    Row("site not in the inventory", launch(seed=inventory("good"), site="dc9"),
        "error: site dc9 is not in inventory/good.yaml", BAD),
    Row("bad inventory field", launch(seed=inventory("bad-fqdn")),
        "error: inventory inventory/bad-fqdn.yaml has 1 problem", BAD,
        more=problem("bad-fqdn", 3, "fqdn: not a fully qualified domain name: 'engine_dc1'")),
    Row("secret file outside the inventory's directory", launch(seed=inventory("outside")),
        "error: inventory inventory/outside.yaml has 1 problem", BAD,
        more=problem("outside", 4, SECRET_OUTSIDE)),
    Row("secret path climbing out with ..", launch(seed=inventory("climbs")),
        "error: inventory inventory/climbs.yaml has 1 problem", BAD,
        more=problem("climbs", 4, SECRET_CLIMBS)),
    Row("secret in an unset variable", launch(seed=inventory("env")),
        f"error: site dc1: admin_password: environment variable {UNSET} is not set", BAD),
    Row("missing secret file", launch(seed=inventory("absent-secret")),
        "error: site dc1: root_password: file:absent-pw: does not exist", BAD),
    Row("empty secret file", launch(seed=inventory("empty-secret")),
        "error: site dc1: root_password: file inventory/empty-pw is empty", BAD),
    Row("prompt without a terminal", launch(seed=inventory("prompt")),
        "error: site dc1: root_password: 'prompt' needs a terminal", BAD),
    Row("--network-from-host, address outside the subnet",
        launch("--network-from-host", "lo", "--address", "192.0.2.10", seed=inventory("good")),
        "error: --network-from-host: 192.0.2.10 is not in lo's subnet 127.0.0.0/8", BAD),
    Row("--network-from-host, no address",
        launch("--network-from-host", "lo", seed=inventory("good")),
        "error: --network-from-host: site dc1 has no IPv4 address", BAD),
    Row("--network-from-host, no such interface",
        launch("--network-from-host", "nosuch0", seed=inventory("good")),
        "error: --network-from-host nosuch0: the interface has no IPv4 address", BAD),
    # libvirt.
    # libvirt's client hands a URI it has no driver for to the daemon: the daemon's answer.
    # (With no daemon running, libvirt says it cannot reach its socket instead.)
    Row("URI of no driver", launch(uri="bogus:///x"),
        "error: cannot connect to libvirt at bogus:///x: no connection driver available for "
        "bogus:///x", ExitCode.MISSING_PREREQUISITE, setup="daemon"),
    Row("URI of a missing socket", launch(uri="qemu:///system?socket=/nonexistent/sock"),
        "error: cannot connect to libvirt at qemu:///system?socket=/nonexistent/sock: Failed to "
        "connect socket to '/nonexistent/sock': No such file or directory",
        ExitCode.MISSING_PREREQUISITE),
    Row("domain exists, no --replace", launch(site=EXISTING, uri="{uri}"),
        f"error: domain he-engine-{EXISTING} already exists at qemu:///system", BAD,
        setup="domain"),
    # A site name of its own on the real libvirtd: a `dc1` domain may exist there (the demo's).
    Row("storage qemu cannot reach",
        launch("--storage", "{closed}/storage", site="r4closed", uri="{uri}"),
        "error: closed does not let qemu's user pass, so qemu cannot reach the disks",
        ExitCode.STORAGE, setup="closed"),
    # Storage.
    Row("read-only storage", launch("--storage", "{ro}/storage"),
        "error: cannot prepare the directory ro/storage: Read-only file system",
        ExitCode.STORAGE, setup="read-only"),
    Row("storage too small", launch("--storage", "{small}/storage"),
        "error: not enough free space in small/storage/images: 0.0 GiB free, 1.0 GiB needed",
        ExitCode.STORAGE, setup="small"),
    # Signals, and what only a real command line carries.
    Row("Ctrl-C at the secret prompt", launch(seed=inventory("prompt")), INTERRUPTED,
        ExitCode.INTERRUPTED, setup="terminal", process=True,
        signal=Signal(signal.SIGINT, "site dc1: root password: ")),
    Row("SIGTERM while waiting for the guest", launch("--boot-timeout", "300"), INTERRUPTED,
        ExitCode.INTERRUPTED,
        process=True, signal=Signal(signal.SIGTERM, "==> waiting for the guest to report")),
    Row("path that is not UTF-8", launch(appliance="{w}/absent-\udcff.ova"),
        "error: --appliance 'absent-\\udcff.ova': No such file or directory", BAD, process=True),
]


def members(ova: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    found = []
    with tarfile.open(ova) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            found.append((member, handle.read()))
    return found


def rebuild(source: Path, dest: Path, edit: Callable[[str, bytes], bytes], *, compress: bool,
            keep_manifest: bool = False) -> None:
    """The OVA's members, edited, in a new tar; the manifest made to match unless kept."""
    edited = [(member, edit(member.name, data)) for member, data in members(source)]
    digests = [(m.name, hashlib.sha256(data).hexdigest()) for m, data in edited
               if not m.name.endswith(".mf")]
    with tarfile.open(dest, "w:gz" if compress else "w") as out:
        for member, data in edited:
            fixed = member.name.endswith(".mf") and not keep_manifest
            written = render_manifest(digests) if fixed else data
            member.size = len(written)
            out.addfile(member, io.BytesIO(written))


def edit_ovf(change: Callable[[str], str]) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        return change(data.decode()).encode() if name.endswith(".ovf") else data
    return edit


def flip_last_disk_byte(name: str, data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF]) if name.endswith(".qcow2") else data


def misread_cpu_item(ovf: str) -> str:
    """A VirtualQuantity in the CPU Item, ahead of the memory Item: hosted-engine reads the
    first one as the memory."""
    return ovf.replace("<rasd:max_num_of_vcpus>",
                       "<rasd:VirtualQuantity>2</rasd:VirtualQuantity><rasd:max_num_of_vcpus>", 1)


def make_appliances(root: Path) -> None:
    qcow2 = root / "bare" / "tiny.qcow2"
    qcow2.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "1G"], check=True)
    write_ova(META, qcow2, root / "tiny.ova", layout="ovirt", console=Console(), mtime=MTIME)
    write_ova(META, qcow2, root / "standard.ova", layout="ovf", console=Console(), mtime=MTIME)
    (root / "emptydir").mkdir()
    (root / "text.ova").write_text("hello\n")
    (root / "text.rpm").write_text("hello\n")
    (root / "empty.ova").write_bytes(b"")
    tiny = (root / "tiny.ova").read_bytes()
    (root / "cut.ova").write_bytes(tiny[: len(tiny) // 2])
    (root / "gzip-text.ova").write_bytes(gzip.compress(b"plain text\n" * 100, mtime=0))
    with tarfile.open(root / "no-ovf.ova", "w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    rebuild(root / "tiny.ova", root / "not-xml.ova", edit_ovf(lambda _: "<Envelope"),
            compress=True)
    rebuild(root / "tiny.ova", root / "misread.ova", edit_ovf(misread_cpu_item), compress=True)
    rebuild(root / "standard.ova", root / "quote.ova",
            edit_ovf(lambda ovf: re.sub(r'ovf:fileRef="[^"]*"', "ovf:fileRef=\"x' or '1'='1\"",
                                        ovf)), compress=False)
    rebuild(root / "standard.ova", root / "tampered.ova", flip_last_disk_byte, compress=False,
            keep_manifest=True)
    shutil.copy(build_small_rpm(root / "rpm"), root / "hello.rpm")


INVENTORIES = {
    "good": ("file:root-pw", "file:admin-pw"),
    "outside": ("file:{w}/outside/root-pw", "file:admin-pw"),
    "climbs": ("file:../outside/root-pw", "file:admin-pw"),
    "env": ("file:root-pw", f"env:{UNSET}"),
    "absent-secret": ("file:absent-pw", "file:admin-pw"),
    "empty-secret": ("file:empty-pw", "file:admin-pw"),
    "prompt": ("prompt", "prompt"),
}


def make_inventories(root: Path) -> None:
    folder, outside = root / "inventory", root / "outside"
    folder.mkdir()
    outside.mkdir()
    for path, text in ((folder / "root-pw", "Secret-pass-4-tests\n"),
                       (folder / "admin-pw", "Secret-pass-4-tests\n"), (folder / "empty-pw", ""),
                       (outside / "root-pw", "Secret-pass-4-tests\n")):
        path.write_text(text)
        path.chmod(0o600)
    for name, (root_pw, admin_pw) in INVENTORIES.items():
        (folder / f"{name}.yaml").write_text(
            f"sites:\n  dc1:\n    fqdn: engine.dc1.example.com\n"
            f"    root_password: {root_pw.format(w=root)}\n    admin_password: {admin_pw}\n")
    (folder / "bad-fqdn.yaml").write_text(
        "sites:\n  dc1:\n    fqdn: engine_dc1\n    root_password: file:root-pw\n"
        "    admin_password: file:admin-pw\n")


def make_seeds(root: Path) -> None:
    assert he_build(["seed", "--inventory", str(root / "inventory" / "good.yaml"), "--site", "dc1",
                     "--out", str(root / "seeds")]) == 0
    changed = root / "changed"
    shutil.copytree(root / "seeds" / "dc1", changed)  # the site's files, not its symlink
    iso = changed / "seed.iso"
    iso.chmod(0o600)
    data = bytearray(iso.read_bytes())
    data[-2048] ^= 0xFF  # in the ISO's last sector: still an ISO, not the one described
    iso.write_bytes(bytes(data))
    (root / "text.iso").write_text("not an ISO\n")
    # A NoCloud seed from elsewhere (no manifest beside it) whose user-data names no FQDN.
    write_iso(root / "foreign.iso", [("meta-data", b"instance-id: foreign\n"),
                                     ("user-data", b"#cloud-config\n{}\n")], epoch=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every input of the rows and of the fuzz, made once."""
    root = tmp_path_factory.mktemp("inputs")
    make_appliances(root)
    make_inventories(root)
    make_seeds(root)
    os.mkfifo(root / "fifo")
    return root


@contextlib.contextmanager
def small_mount(mount_point: Path, options: str) -> Iterator[Path]:
    """A tmpfs of its own: a file system that is full, or read-only, for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@contextlib.contextmanager
def existing_domain(uri: str, name: str) -> Iterator[None]:
    """A defined domain (never started) that the launch must not touch."""
    with Hypervisor(uri) as hv:
        handle = hv.define(render_domain_xml(DomainSpec(
            name=name, uuid=uuid.uuid4(), virt_type="qemu", memory_mib=64, vcpus=1)))
        try:
            yield
            assert hv.lookup(name) is not None, "the existing domain was removed"
        finally:
            handle.remove()


@contextlib.contextmanager
def environment(row: Row, request: pytest.FixtureRequest, tmp_path: Path,
                ) -> Iterator[dict[str, Path | str]]:
    """What the row's `setup` needs, as the places its argv names."""
    if row.setup in ("driver", "terminal"):
        yield {}
    elif row.setup == "daemon":
        yield {"uri": request.getfixturevalue("libvirt_uri")}
    elif row.setup == "domain":
        uri = request.getfixturevalue("libvirt_uri")
        with existing_domain(uri, f"he-engine-{EXISTING}"):
            yield {"uri": uri}
    elif row.setup == "closed":
        closed = tmp_path / "closed"
        closed.mkdir(mode=0o700)
        yield {"uri": request.getfixturevalue("libvirt_uri"), "closed": closed}
    elif row.setup == "read-only":
        with small_mount(tmp_path / "ro", "ro,size=1m,mode=0755") as mount:
            yield {"ro": mount}
    elif row.setup == "small":
        with small_mount(tmp_path / "small", "size=16m,mode=0755") as mount:
            yield {"small": mount}
    else:
        raise AssertionError(f"unknown setup {row.setup}")


def read_until(stream: int, text: str, seconds: float) -> bytes:
    """What `stream` gives until `text` shows up (the prompt ends without a line break)."""
    seen = b""
    end = time.monotonic() + seconds
    while text.encode() not in seen:
        left = end - time.monotonic()
        assert left > 0, f"no {text!r} within {seconds} s: {seen.decode(errors='replace')}"
        ready, _, _ = select.select([stream], [], [], left)
        chunk = os.read(stream, 65536) if ready else b""
        assert chunk or not ready, f"he-launch ended before {text!r}: {seen!r}"
        seen += chunk
    return seen


def run_process(row: Row, argv: list[str]) -> tuple[int, str, str]:
    """he-launch in a process of its own, with no controlling terminal (so `prompt` reads
    the pty on stdin when the row gives it one)."""
    primary, secondary = pty.openpty() if row.setup == "terminal" else (-1, subprocess.DEVNULL)
    proc = subprocess.Popen([*INTERRUPTIBLE, sys.executable, "-m", "builder.cli.he_launch", *argv],
                            stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    early = b""
    try:
        if row.signal is not None:
            assert proc.stderr is not None
            early = read_until(proc.stderr.fileno(), row.signal.after, 120)
            proc.send_signal(row.signal.signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if primary >= 0:
            os.close(primary)
            os.close(int(secondary))
    return proc.returncode, out.decode(), (early + err).decode(errors="backslashreplace")


@pytest.mark.parametrize("row", ROWS, ids=[row.label for row in ROWS])
def test_row(row: Row, world: Path, tmp_path: Path, request: pytest.FixtureRequest,
             capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    with environment(row, request, tmp_path) as places:
        argv = fill(row.argv, w=world, st=tmp_path / "storage", **places)
        if row.process:
            code, out, err = run_process(row, argv)
        else:
            code = main(argv)
            out, err = capsys.readouterr()
        if row.setup == "small":  # the unpack began, and left nothing half-written
            images = tmp_path / "small" / "storage" / "images"
            assert images.is_dir() and not list(images.glob(".*partial*"))
    assert_row(row, code, out, err, world, tmp_path)
    if row.signal is not None and row.signal.signum == signal.SIGTERM:
        assert "removed the domain he-engine-dc1" in err, err


# The fuzz: random command lines of he-launch's real options with nasty values. None may start
# a VM: every appliance it names is missing, not an appliance, or a directory without one, and
# the URI is the test driver or one that cannot connect.
FUZZ_SEED = 20261130
FUZZ_CASES = 400
SAFE_URIS = (TEST_URI, "bogus:///x", "qemu:///system?socket=/nonexistent/sock")
NASTY_NAMES = ("dc1", "dc9", "", "../x", "DC1", "a" * 64, "dc1\n", "d c", "-x", "d\u00e71",
               "dc1\udcff", "dc1;reboot", "\u202edc1", ".hidden", "x/y")
NUMBERS = ("0", "-1", "1", "4096", "1e3", "99999999999999999999", "0x10", " 5", "nan", "",
           "\u0665")
SECONDS = ("0", "-1", "nan", "inf", "-inf", "1e400", "1e-300", "abc", "", "10", "1e308")


def fuzz_pools(w: Path) -> dict[str, tuple[str, ...]]:
    return {
        "--mac": ("00:16:3e:00:00:01", "zz", "01:00:5e:00:00:01", "00:16:3E:00:00:01", "",
                  "00:16:3e:00:00:01\n", "00-16-3e-00-00-01"),
        "--memory": NUMBERS, "--vcpus": NUMBERS,
        "--virt-type": ("auto", "kvm", "qemu", "xen", ""),
        "--firmware": ("uefi", "bios", "efi"),
        "--boot-timeout": SECONDS, "--setup-timeout": SECONDS, "--health-timeout": SECONDS,
        "--health-url": ("ftp://x", "http://", "http://[::1", "http://h:99999/", "",
                         "http://engine.dc1.example.com/health", "javascript:alert(1)",
                         "http://a b/"),
        "--fqdn": ("engine.dc1.example.com", "engine", "a..b", "x" * 300, "-a.b", ""),
        "--network-from-host": ("lo", "eth0 up", "nosuch0", ""),
        "--address": ("192.0.2.10", "127.0.0.2", "1.2.3", "", "::1"),
        "--allow-secrets-from": (f"{w}/emptydir", f"{w}/absent", f"{w}/text.ova", ""),
        "--name": NASTY_NAMES, "--site": NASTY_NAMES,
    }


def fuzz_choices(w: Path) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Groups of which a case takes one (or none: the group's empty choice)."""
    return {
        "appliance": (*(("--appliance", path) for path in (
            f"{w}/absent.ova", f"{w}/absent dir/x.ova", f"{w}/absent-\udcff.ova",
            f"{w}/absent\n.ova", "", f"{w}/text.ova", f"{w}/emptydir", f"{w}/fifo",
            f"{w}/text.ova/x.ova")), ()),
        "seed": (("--no-seed",), ("--seed", f"{w}/absent.iso"), ("--seed", f"{w}/text.iso"),
                 ("--seed", f"{w}/seeds/dc1/seed.iso"), ("--seed", f"{w}/changed/seed.iso"),
                 ("--seed", f"{w}/emptydir"), ("--inventory", f"{w}/inventory/good.yaml"),
                 ("--inventory", f"{w}/inventory/bad-fqdn.yaml"),
                 ("--inventory", f"{w}/inventory/outside.yaml"),
                 ("--inventory", f"{w}/absent.yaml"), (), ("--no-seed", "--seed", "")),
        "nic": (("--no-network",), ("--network", "default"), ("--network", ""),
                ("--network", "lab/net"), ("--bridge", "br0"), ("--bridge", "ovirtmgmt-bridge0"),
                ("--bridge", ""), (), ("--no-network", "--bridge", "br0")),
        "junk": ((), (), (), ("--colour",), ("-x",), ("extra",), ("--no",), ("--appliance",)),
    }


FLAGS = ("--health-check", "--keep", "--replace", "--transient", "--json", "--debug")


def sound_parts(rng: random.Random, w: Path) -> list[tuple[str, ...]]:
    """A command line the options accept, whose launch stops at the appliance (or before:
    at the seed, the inventory or the URI)."""
    return [
        ("--appliance", rng.choice((f"{w}/text.ova", f"{w}/emptydir", f"{w}/not-xml.ova"))),
        rng.choice((("--no-seed",), ("--seed", f"{w}/seeds/dc1/seed.iso"),
                    ("--seed", f"{w}/changed/seed.iso"), ("--seed", f"{w}/text.iso"),
                    ("--inventory", f"{w}/inventory/good.yaml"),
                    ("--inventory", f"{w}/inventory/bad-fqdn.yaml"),
                    ("--inventory", f"{w}/inventory/outside.yaml"))),
        ("--site", rng.choice(("dc1", "dc9"))),
        rng.choice((("--no-network",), ("--network", "default"), ("--bridge", "br0"))),
    ]


def chaos_parts(rng: random.Random, w: Path) -> list[tuple[str, ...]]:
    """Anything from every group and pool."""
    parts: list[tuple[str, ...]] = [rng.choice(group) for group in fuzz_choices(w).values()]
    parts.extend((flag, rng.choice(values)) for flag, values in fuzz_pools(w).items()
                 if rng.random() < 0.2)
    if rng.random() < 0.7:
        parts.append(("--site", "dc1"))
    return parts


def fuzz_argv(rng: random.Random, w: Path, storage: Path) -> list[str]:
    """One command line, sound but for one nasty value, or chaos; --uri and --storage come
    last, so that they win."""
    if rng.random() < 0.5:
        parts = sound_parts(rng, w)
        if rng.random() < 0.5:
            flag, values = rng.choice(list(fuzz_pools(w).items()))
            parts.append((flag, rng.choice(values)))
    else:
        parts = chaos_parts(rng, w)
    parts.extend((flag,) for flag in FLAGS if rng.random() < 0.15)
    rng.shuffle(parts)
    where = str(storage) if rng.random() < 0.7 else rng.choice(
        (f"{storage}/deep/er", f"{w}/text.ova", f"{w}/text.ova/sub", ""))
    uri = TEST_URI if rng.random() < 0.6 else rng.choice(SAFE_URIS)
    return [*(arg for part in parts for arg in part), "--uri", uri, "--storage", where]


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with its output in strings (they take every character, even lone
    surrogates, which a real stderr writes escaped)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_fuzz_no_traceback_no_internal_error_no_vm(world: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    rng = random.Random(FUZZ_SEED)
    stopped: Counter[str] = Counter()
    for case in range(FUZZ_CASES):
        argv = fuzz_argv(rng, world, tmp_path / f"case-{case}")
        code, out, err = run_in_process(argv)
        where = f"case {case}: he-launch {argv!r}\n{err}"
        assert "internal error" not in err, where
        assert "--debug" in argv or TRACEBACK not in out + err, where
        # Stopped before the start: no VM, so no virtualization chosen and no waiting.
        assert code in (ExitCode.BAD_INPUT, ExitCode.MISSING_PREREQUISITE, ExitCode.INTEGRITY,
                        ExitCode.STORAGE), where
        assert "virtualization:" not in err and "waiting for the guest" not in err, where
        if "--json" in argv:
            assert json.loads(out)["exit_code"] == code, where
        stopped["launcher" if "==> " in err or code != ExitCode.BAD_INPUT else "options"] += 1
    # Both ends are exercised, or the sample proves little.
    assert stopped["options"] > FUZZ_CASES // 2 and stopped["launcher"] > FUZZ_CASES // 20, \
        stopped
