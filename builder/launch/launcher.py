"""One launch, as a flat list of steps; every cleanup in one ExitStack, run in reverse order."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from builder.console import Console, counted
from builder.errors import BuilderError, InputError, MissingPrerequisiteError, SecretOnDiskError
from builder.launch.channel import ChannelReport, Deadlines, connect_channel, read_report
from builder.launch.guest_console import schema_refusals
from builder.launch.hostnet import read_host_network
from builder.launch.image import ApplianceInfo, PreparedDisk, prepare_appliance_disk
from builder.launch.options import LaunchOptions
from builder.launch.report import LaunchReport, SecretScan
from builder.launch.scan import scan_file
from builder.launch.seeding import SeedPlan, copy_seed, remove_copies
from builder.launch.storage import StorageModes, create_private_file, open_private
from builder.launch.vm import NicChoice, build_engine_spec, seed_cdrom
from builder.repro import stable_mac
from builder.seed.protocol import CHANNEL_NAME
from builder.virt.domain import Firmware, VirtType, render_domain_xml
from builder.virt.errors import VirtError
from builder.virt.hypervisor import DomainHandle, Hypervisor


@dataclass
class PhaseTimer:
    """Wall-clock seconds per named phase, in the order they ran."""

    durations: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.durations[name] = round(time.monotonic() - start, 3)


@dataclass
class Outcome:
    """What the cleanups need to know about how the launch ended."""

    succeeded: bool = False
    domain_kept: bool = False


@dataclass(frozen=True)
class LaunchPaths:
    """Where one site's launch keeps its files."""

    workdir: Path
    images: Path
    rpms: Path

    @property
    def overlay(self) -> Path:
        return self.workdir / "engine-overlay.qcow2"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    @property
    def transcript(self) -> Path:
        return self.workdir / "engine-setup.log"

    @property
    def nvram(self) -> Path:
        return self.workdir / "nvram.fd"


def domain_name_of(opts: LaunchOptions) -> str:
    return opts.domain_name or f"he-engine-{opts.site}"


def paths_of(opts: LaunchOptions) -> LaunchPaths:
    return LaunchPaths(workdir=opts.storage / (opts.site or domain_name_of(opts)),
                       images=opts.storage / "images", rpms=opts.storage / "rpms")


@dataclass(frozen=True)
class Launch:
    """The per-run context every step reads: options, names, paths, console, phase timer,
    and how files are given modes and owners (docs/launch.md, "What stays where")."""

    opts: LaunchOptions
    name: str
    paths: LaunchPaths
    console: Console
    timer: PhaseTimer
    modes: StorageModes


def new_report(opts: LaunchOptions) -> LaunchReport:
    """What is known before anything runs."""
    paths = paths_of(opts)
    return LaunchReport(site=opts.site, domain=domain_name_of(opts),
                        console_log=str(paths.console_log), transcript=str(paths.transcript))


def run_launch(
    opts: LaunchOptions, console: Console, env: Mapping[str, str], report: LaunchReport,
) -> LaunchReport:
    """Launch the engine VM and wait for engine-setup's verdict; `report` (from new_report)
    is filled as the launch goes, so a failure's report shows how far it got."""
    outcome = Outcome()
    with Hypervisor(opts.uri) as hv, ExitStack() as cleanups:
        modes = StorageModes.for_qemu(hv.qemu_identity())
        run = Launch(opts, domain_name_of(opts), paths_of(opts), console,
                     PhaseTimer(report.durations), modes)
        with run.timer.phase("prepare"):
            # Before the work directory is touched: the old domain may be running from it.
            refuse_or_replace(hv, run.name, opts.replace, console)
            prepare_workdir(run)
            # The seed first: a bad inventory or secret stops the launch before any disk work.
            seed = prepare_seed(run, env)
            check_health_target(opts, seed)
            if seed is not None:
                cleanups.callback(_remove_seed, seed, outcome, console)
            # Registered before the overlay exists: a failed run may have stopped before the
            # guest's scrub (or an old seed put the answer file on the disk), so a failure
            # takes it away (unless its domain is kept).
            cleanups.callback(_remove_disks_on_failure, run.paths, outcome, console)
            disk = prepare_appliance(run)
            firmware = choose_firmware(hv, run, disk.info)
        report.firmware = firmware
        # Registered before the start, by name: a Ctrl-C landing just as libvirt returns
        # must not leave the new domain behind (no domain of that name existed before).
        cleanups.callback(_remove_domain_on_failure, hv, run.name, opts.keep, outcome, console)
        with run.timer.phase("start"):
            handle, virt = start_vm(hv, run, disk, seed, firmware)
        report.virt_type, report.virt_reason = virt
        try:
            with _logs_in_hint(run.paths):
                channel = stream_report(handle, run, report)
        finally:
            # A refused runcmd is also why a guest never reports: said before the error.
            warn_on_refused_configuration(run, report)
        report.exit_status = channel.final_exit_code()
        if report.exit_status == 0:
            # The engine VM stays from here on, even if the health poll gives up.
            outcome.succeeded = True
            finish_success(handle, seed, disk, run, report)
        return report


@contextlib.contextmanager
def _logs_in_hint(paths: LaunchPaths) -> Iterator[None]:
    """A failure after the start points at the logs that tell why."""
    try:
        yield
    except BuilderError as exc:
        exc.hint = exc.hint or f"console log {paths.console_log}, transcript {paths.transcript}"
        raise


def warn_on_refused_configuration(run: Launch, report: LaunchReport) -> None:
    """A seed whose configuration the guest's cloud-init refused (in part) still boots and may
    still set up the engine: a warning, with where to look."""
    if not schema_refusals(run.paths.console_log):
        return
    warning = ("the guest's cloud-init called its configuration (the seed's user-data, with "
               "cloud-init before 23.4 the appliance's too) invalid: some of it may not be "
               "applied")
    report.warnings.append(warning)
    run.console.note(f"warning: {warning} (console log {run.paths.console_log})")


def refuse_or_replace(hv: Hypervisor, name: str, replace: bool, console: Console) -> None:
    existing = hv.lookup(name)
    if existing is None:
        return
    if not replace:
        raise InputError(f"domain {name} already exists at {hv.uri}",
                         hint="pass --replace to destroy it and launch again")
    console.note(f"replacing the existing domain {name}")
    existing.remove()


def check_health_target(opts: LaunchOptions, seed: SeedPlan | None) -> None:
    """--health-check needs an address to poll: --health-url, --fqdn or the seed's FQDN."""
    if opts.health_check and not opts.health_url and not opts.fqdn and not (seed and seed.fqdn):
        raise InputError("--health-check: no engine FQDN to poll",
                         hint="pass --fqdn or --health-url, or a seed that names the FQDN")


def prepare_workdir(run: Launch) -> None:
    """The storage and site directories, with their modes set whatever the umask; what an
    earlier domain of this name left (its UEFI variables) goes."""
    run.modes.check_reachable(run.opts.storage)
    run.modes.passage_dir(run.opts.storage)
    run.modes.passage_dir(run.paths.workdir)
    run.paths.nvram.unlink(missing_ok=True)


def prepare_appliance(run: Launch) -> PreparedDisk:
    """Verify the appliance (unless this very file passed before), unpack it once, overlay it."""
    opts, paths, console = run.opts, run.paths, run.console
    console.step(f"verifying the appliance {opts.appliance}")
    disk = prepare_appliance_disk(opts.appliance, paths.rpms, paths.images, paths.overlay,
                                  run.modes)
    checked = "verified before, unchanged" if disk.verified_before else "manifest verified"
    console.note(f"disk: {disk.base} ({'reused' if disk.reused else 'unpacked'}; {checked}), "
                 f"overlay {disk.overlay}")
    return disk


def appliance_firmware(info: ApplianceInfo) -> Firmware | None:
    """The firmware the appliance declares (its OVF, or the qcow2 RPM's metadata)."""
    return "uefi" if info.firmware == "uefi" else "bios" if info.firmware == "bios" else None


def choose_firmware(hv: Hypervisor, run: Launch, info: ApplianceInfo) -> Firmware:
    """--firmware, else the appliance's, else BIOS; UEFI only when libvirt has OVMF."""
    declared = appliance_firmware(info)
    firmware: Firmware = run.opts.firmware or declared or "bios"
    source = "OVF" if info.kind == "ova" else "metadata"
    why = ("--firmware" if run.opts.firmware else f"the appliance's {source}" if declared
           else "default: the appliance does not say")
    if firmware == "uefi" and hv.offers_uefi() is False:
        raise MissingPrerequisiteError(
            f"UEFI boot asked for ({why}), but libvirt at {hv.uri} finds no UEFI firmware",
            hint="install OVMF: apt-get install ovmf (Debian) or dnf install edk2-ovmf (EL)")
    run.console.note(f"firmware: {firmware} ({why})")
    return firmware


def prepare_seed(run: Launch, env: Mapping[str, str]) -> SeedPlan | None:
    opts, paths, console = run.opts, run.paths, run.console
    if opts.seed is not None:
        console.step(f"using the seed {opts.seed}")
        copied = copy_seed(opts.seed, paths.workdir, run.modes)
        if opts.site is not None and copied.site not in (None, opts.site):
            raise InputError(f"--seed {opts.seed}: rendered for site {copied.site}, "
                             f"not --site {opts.site}",
                             hint=f"pass --site {copied.site}, or the seed of site {opts.site}")
        return _checked_mac(copied, opts)
    if opts.inventory is None or opts.site is None:
        return None
    # The inventory models and the seed renderer take ~0.3 s to import: only this path pays.
    from builder.launch.site_seed import render_site_seed  # noqa: PLC0415

    host = read_host_network(opts.network_from_host) if opts.network_from_host else None
    if host is not None:
        dns = ", ".join(map(str, host.dns_servers)) or "none"
        console.note(f"host network of {host.interface}: {host.address}, gateway "
                     f"{host.gateway or 'none'}, DNS {dns}")
    console.step(f"rendering the seed of site {opts.site} from {opts.inventory}")
    return _checked_mac(render_site_seed(opts.inventory, opts.site, paths.workdir, env=env,
                                         host_network=host, address=opts.address,
                                         allow_secrets_from=opts.allow_secrets_from,
                                         modes=run.modes), opts)


def _checked_mac(seed: SeedPlan, opts: LaunchOptions) -> SeedPlan:
    """The seed's network profile matches its NIC by MAC: another --mac leaves it unused."""
    if opts.mac is not None and seed.mac is not None and opts.mac != seed.mac:
        remove_copies(seed)
        raise InputError(f"--mac {opts.mac} is not the MAC the seed configures ({seed.mac}): "
                         "the guest would not find its network",
                         hint="leave --mac out, or set the site's network.mac and re-seed")
    return seed


def start_vm(
    hv: Hypervisor, run: Launch, disk: PreparedDisk, seed: SeedPlan | None, firmware: Firmware,
) -> tuple[DomainHandle, tuple[VirtType, str]]:
    """Create the domain: kvm when it starts, else qemu (TCG); say which and why."""
    # Ours, 0600, before virtlogd appends the guest's console to it.
    create_private_file(run.paths.console_log)
    started = hv.start_domain(lambda virt: domain_xml(run, disk, seed, virt, firmware),
                              run.opts.virt_type, persistent=not run.opts.transient)
    why = "asked for with --virt-type" if run.opts.virt_type != "auto" else started.why
    run.console.note(f"virtualization: {started.virt_type} ({why})")
    return started.handle, (started.virt_type, why)


def domain_xml(run: Launch, disk: PreparedDisk, seed: SeedPlan | None, virt_type: VirtType,
               firmware: Firmware) -> bytes:
    opts, name, paths = run.opts, run.name, run.paths
    mac = opts.mac or (seed.mac if seed else None) or stable_mac(opts.site or name)
    spec = build_engine_spec(
        name=name, virt_type=virt_type,
        memory_mib=opts.memory_mib or disk.info.memory_mib, vcpus=opts.vcpus or disk.info.vcpus,
        overlay=disk.overlay, seed=seed.iso if seed else None,
        nic=NicChoice(network=opts.network, bridge=opts.bridge), mac=mac,
        console_log=paths.console_log, firmware=firmware,
        nvram=paths.nvram if firmware == "uefi" else None)
    return render_domain_xml(spec)


def stream_report(handle: DomainHandle, run: Launch, launch: LaunchReport) -> ChannelReport:
    """Follow the channel until engine-setup's status; boot and setup timed apart."""
    opts, paths, console = run.opts, run.paths, run.console
    started = time.monotonic()
    deadlines = Deadlines(boot_s=opts.boot_timeout, setup_s=opts.setup_timeout)
    console.step(f"waiting for the guest to report (boot timeout {opts.boot_timeout:g} s); "
                 f"console log: {paths.console_log}")
    report = ChannelReport(network=launch.network, ssh=launch.ssh, scrub=launch.scrub)
    try:
        sock = connect_channel(lambda: handle.channel_socket(CHANNEL_NAME), handle.is_active,
                               started + opts.boot_timeout)
        with sock, open_private(paths.transcript) as transcript:
            read_report(sock, deadlines, _line_printer(console), transcript, started=started,
                        report=report, quiet=_waiting_display(console, started, deadlines))
    finally:
        _record_phases(run.timer, started, report)
    return report


def _line_printer(console: Console) -> Callable[[str], None]:
    def show(line: str) -> None:
        console.note(f"  | {line}")
    return show


def _waiting_display(
    console: Console, started: float, deadlines: Deadlines
) -> Callable[[ChannelReport], None] | None:
    """On a terminal, a line that counts the silent seconds against the current timeout."""
    if not console.interactive:
        return None

    def show(report: ChannelReport) -> None:
        now = time.monotonic()
        if report.first_line_at is None:
            label, since, limit = "boot: waiting for the guest", started, deadlines.boot_s
        else:
            label, since, limit = (f"setup: {counted(report.lines, 'line')} so far",
                                   report.first_line_at, deadlines.setup_s)
        console.progress(f"{label}, {now - since:.0f} s of {limit:g} s", int(now - since),
                         int(limit))
    return show


def _record_phases(timer: PhaseTimer, started: float, report: ChannelReport) -> None:
    """boot: until the guest's first line; setup: from there to the status."""
    end = time.monotonic()
    first = report.first_line_at
    timer.durations["boot"] = round((first or end) - started, 3)
    if first is not None:
        timer.durations["setup"] = round(end - first, 3)


def finish_success(
    handle: DomainHandle, seed: SeedPlan | None, disk: PreparedDisk, run: Launch,
    report: LaunchReport,
) -> None:
    """Eject the seed (it holds secrets), check the engine's disk kept no copy of its
    passwords, say where the engine is, optionally wait for it. Nothing here fails the
    deploy itself: the engine VM keeps running whatever happens."""
    opts, console = run.opts, run.console
    report.seed_ejected = seed is not None and eject_seed(handle, seed, run, report)
    found = scan_overlay(disk.overlay, seed, run, report) if seed is not None else 0
    fqdn = opts.fqdn or (seed.fqdn if seed else None)
    report.url = f"https://{fqdn}/ovirt-engine/" if fqdn else None
    if opts.health_check:
        # urllib (with ssl and http.client) is ~50 ms of start-up that only this option needs.
        from builder.launch.health import health_url, wait_for_health  # noqa: PLC0415

        url = opts.health_url or health_url(str(fqdn))
        console.step(f"waiting for the engine's health page {url}")
        with run.timer.phase("health"):
            wait_for_health(url, opts.health_timeout)
        report.health = "up"
    if found:
        raise SecretOnDiskError(
            f"engine-setup succeeded, but the engine's disk {disk.overlay} still holds {found} "
            "copies of the answer file's password lines",
            hint="the engine VM keeps running; treat its admin password as exposed to whoever "
                 "can read that disk (or its backups) and change it "
                 "(ovirt-aaa-jdbc-tool user password-reset admin)")


def eject_seed(handle: DomainHandle, seed: SeedPlan, run: Launch,
               report: LaunchReport) -> bool:
    """Take the seed out of the running and the defined domain (checked). A medium that will
    not go is a warning, not a failed deploy: its file is deleted anyway and the drive's
    source is optional, so the next start drops it."""
    with run.timer.phase("eject"):
        try:
            ejection = handle.eject(seed_cdrom(seed.iso))
        except VirtError as exc:
            warning = f"the seed could not be ejected: {exc.message}"
            report.warnings.append(warning)
            run.console.note(f"warning: {warning} ({exc.hint})")
            return False
    how = f" after {ejection.attempts} attempts" if ejection.attempts > 1 else ""
    if ejection.drive_removed:
        how += ", with its CD-ROM drive (libvirt could not open the tray)"
    report.eject_attempts = ejection.attempts
    run.console.note(f"seed ejected{how} (checked: the domain no longer names it)")
    return True


def scan_overlay(overlay: Path, seed: SeedPlan, run: Launch, report: LaunchReport) -> int:
    """Count the copies of the answer file's password lines left in the engine's disk."""
    if not seed.secret_lines:
        return 0
    with run.timer.phase("scan"):
        scanned = scan_file(overlay, seed.secret_lines)
    report.secret_scan = SecretScan(str(overlay), scanned.bytes_read, scanned.found)
    mib = scanned.bytes_read / (1 << 20)
    if scanned.found:
        copies = counted(scanned.found, "copy", "copies")
        run.console.note(f"the engine's disk still holds {copies} of the answer file's password "
                         f"lines ({mib:.0f} MiB read)")
    else:
        run.console.note(f"the engine's disk holds no copy of the answer file's password lines "
                         f"({mib:.0f} MiB read)")
    return scanned.found


def _remove_seed(seed: SeedPlan, outcome: Outcome, console: Console) -> None:
    """The seed copies go, unless a failed domain is kept (it still points at them)."""
    if outcome.domain_kept:
        console.note(f"kept the seed for the kept domain: {seed.iso}")
        return
    remove_copies(seed)


def _remove_disks_on_failure(paths: LaunchPaths, outcome: Outcome, console: Console) -> None:
    """After a failure the overlay (the guest may have stopped before its scrub: cloud-init's
    copies of the seed, or an older seed's answer file, would still be on it) and the UEFI
    variables go, unless their domain is kept."""
    if outcome.succeeded or outcome.domain_kept:
        return
    removed = [path for path in (paths.overlay, paths.nvram) if path.exists()]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        console.note(f"removed {', '.join(str(p) for p in removed)}")


def _remove_domain_on_failure(
    hv: Hypervisor, name: str, keep: bool, outcome: Outcome, console: Console
) -> None:
    if outcome.succeeded:
        return
    handle = hv.lookup(name)
    if handle is None:
        return
    if keep:
        outcome.domain_kept = True
        console.note(f"kept the domain {name} (--keep)")
        return
    handle.remove()
    console.note(f"removed the domain {name}")
