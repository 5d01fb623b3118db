"""One launch, as a flat list of steps; every cleanup in one ExitStack, run in reverse order."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.console import Console
from builder.errors import BuilderError, InputError
from builder.launch.channel import (
    CHANNEL_NAME,
    ChannelReport,
    Deadlines,
    connect_channel,
    read_report,
)
from builder.launch.disk import PreparedDisk, check_traversable, locate_appliance, prepare_disk
from builder.launch.hostnet import read_host_network
from builder.launch.options import LaunchOptions
from builder.launch.seeding import SeedPlan, copy_seed, remove_copies
from builder.launch.vm import NicChoice, build_engine_spec, seed_cdrom
from builder.repro import stable_mac
from builder.virt.domain import VirtType, render_domain_xml
from builder.virt.errors import VmStartError
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


def domain_name_of(opts: LaunchOptions) -> str:
    return opts.domain_name or f"he-engine-{opts.site}"


def paths_of(opts: LaunchOptions) -> LaunchPaths:
    return LaunchPaths(workdir=opts.storage / (opts.site or domain_name_of(opts)),
                       images=opts.storage / "images", rpms=opts.storage / "rpms")


@dataclass(frozen=True)
class Launch:
    """The per-run context every step reads: options, names, paths, console, phase timer."""

    opts: LaunchOptions
    name: str
    paths: LaunchPaths
    console: Console
    timer: PhaseTimer


def run_launch(
    opts: LaunchOptions, console: Console, env: Mapping[str, str], result: dict[str, Any],
) -> dict[str, Any]:
    """Launch the engine VM and wait for engine-setup's verdict; `result` is filled as the
    launch goes (a failure's report shows how far it got) and returned."""
    run = Launch(opts, domain_name_of(opts), paths_of(opts), console, PhaseTimer())
    result.update(initial_result(run))
    outcome = Outcome()
    with Hypervisor(opts.uri) as hv, ExitStack() as cleanups:
        with run.timer.phase("prepare"):
            refuse_or_replace(hv, run.name, opts.replace, console)
            prepare_workdir(opts, run.paths)
            # The seed first: a bad inventory or secret stops the launch before any disk work.
            seed = prepare_seed(opts, run.paths, console, env)
            if seed is not None:
                cleanups.callback(_remove_seed, seed, outcome, console)
            disk = prepare_appliance(run)
        # Registered before the start, by name: a Ctrl-C landing just as libvirt returns
        # must not leave the new domain behind (no domain of that name existed before).
        cleanups.callback(_remove_domain_on_failure, hv, run.name, opts.keep, outcome, console)
        with run.timer.phase("start"):
            handle, virt = start_vm(hv, run, disk, seed)
        result.update(virt_type=virt[0], virt_reason=virt[1])
        with _logs_in_hint(run.paths):
            report = stream_report(handle, run, result)
        result["exit_status"] = report.final_exit_code()
        if result["exit_status"] == 0:
            # The engine VM stays from here on, even if the health poll gives up.
            outcome.succeeded = True
            finish_success(handle, seed, run, result)
        return result


def initial_result(run: Launch) -> dict[str, Any]:
    """What is known before anything runs; `durations` fills in phase by phase."""
    return {
        "site": run.opts.site, "domain": run.name, "virt_type": None, "virt_reason": None,
        "exit_status": None, "network": [], "console_log": str(run.paths.console_log),
        "transcript": str(run.paths.transcript), "durations": run.timer.durations,
    }


@contextlib.contextmanager
def _logs_in_hint(paths: LaunchPaths) -> Iterator[None]:
    """A failure after the start points at the logs that tell why."""
    try:
        yield
    except BuilderError as exc:
        exc.hint = exc.hint or f"console log {paths.console_log}, transcript {paths.transcript}"
        raise


def refuse_or_replace(hv: Hypervisor, name: str, replace: bool, console: Console) -> None:
    existing = hv.lookup(name)
    if existing is None:
        return
    if not replace:
        raise InputError(f"domain {name} already exists at {hv.uri}",
                         hint="pass --replace to destroy it and launch again")
    console.note(f"replacing the existing domain {name}")
    existing.remove()


def prepare_workdir(opts: LaunchOptions, paths: LaunchPaths) -> None:
    if opts.uri.startswith("qemu:///system"):
        check_traversable(opts.storage)
    paths.workdir.mkdir(parents=True, exist_ok=True)
    paths.workdir.chmod(0o711)


def prepare_appliance(run: Launch) -> PreparedDisk:
    """Verify the appliance (unless this very file passed before), unpack it once, overlay it."""
    opts, paths, console = run.opts, run.paths, run.console
    console.step(f"verifying the appliance {opts.appliance}")
    appliance = locate_appliance(opts.appliance, paths.rpms)
    disk = prepare_disk(appliance, paths.images, paths.overlay)
    checked = "verified before, unchanged" if disk.verified_before else "manifest verified"
    console.note(f"disk: {disk.base} ({'reused' if disk.reused else 'unpacked'}; {checked}), "
                 f"overlay {disk.overlay}")
    return disk


def prepare_seed(
    opts: LaunchOptions, paths: LaunchPaths, console: Console, env: Mapping[str, str]
) -> SeedPlan | None:
    if opts.seed is not None:
        console.step(f"using the seed {opts.seed}")
        return copy_seed(opts.seed, paths.workdir)
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
    return render_site_seed(opts.inventory, opts.site, paths.workdir, env=env,
                            host_network=host, address=opts.address)


def start_vm(
    hv: Hypervisor, run: Launch, disk: PreparedDisk, seed: SeedPlan | None
) -> tuple[DomainHandle, tuple[VirtType, str]]:
    """Create the domain: kvm when it starts, else qemu (TCG); say which and why."""
    opts = run.opts
    run.paths.console_log.unlink(missing_ok=True)
    first: VirtType = "qemu" if opts.virt_type == "qemu" else "kvm"
    why = "asked for with --virt-type" if opts.virt_type != "auto" else "KVM works"
    if opts.virt_type == "auto":
        offered, reason = hv.kvm_offered()
        if not offered:
            first, why = "qemu", reason
    try:
        handle = _create(hv, run, disk, seed, first)
    except VmStartError as exc:
        if opts.virt_type != "auto" or first == "qemu":
            raise
        first, why = "qemu", f"KVM does not work here: {exc.message}"
        handle = _create(hv, run, disk, seed, first)
    run.console.note(f"virtualization: {first} ({why})")
    return handle, (first, why)


def _create(
    hv: Hypervisor, run: Launch, disk: PreparedDisk, seed: SeedPlan | None, virt_type: VirtType
) -> DomainHandle:
    opts, name, paths = run.opts, run.name, run.paths
    mac = opts.mac or (seed.mac if seed else None) or stable_mac(opts.site or name)
    spec = build_engine_spec(
        name=name, virt_type=virt_type,
        memory_mib=opts.memory_mib or disk.info.memory_mib, vcpus=opts.vcpus or disk.info.vcpus,
        overlay=disk.overlay, seed=seed.iso if seed else None,
        nic=NicChoice(network=opts.network, bridge=opts.bridge), mac=mac,
        console_log=paths.console_log)
    return hv.create(render_domain_xml(spec), persistent=not opts.transient)


def stream_report(handle: DomainHandle, run: Launch, result: dict[str, Any]) -> ChannelReport:
    """Follow the channel until engine-setup's status; boot and setup timed apart."""
    opts, paths, console = run.opts, run.paths, run.console
    started = time.monotonic()
    deadlines = Deadlines(boot_s=opts.boot_timeout, setup_s=opts.setup_timeout)
    console.step(f"waiting for the guest to report (boot timeout {opts.boot_timeout:g} s); "
                 f"console log: {paths.console_log}")
    report = ChannelReport(network=result["network"])
    try:
        sock = connect_channel(lambda: handle.channel_socket(CHANNEL_NAME), handle.is_active,
                               started + opts.boot_timeout)
        with sock, paths.transcript.open("wb") as transcript:
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
            label, since, limit = (f"setup: {report.lines} lines so far", report.first_line_at,
                                   deadlines.setup_s)
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
    handle: DomainHandle, seed: SeedPlan | None, run: Launch, result: dict[str, Any]
) -> None:
    """Eject the seed (it holds secrets), say where the engine is, optionally wait for it."""
    opts, console = run.opts, run.console
    if seed is not None:
        with run.timer.phase("eject"):
            handle.eject(seed_cdrom(seed.iso))
        console.note("seed ejected (checked: the domain no longer names it)")
    result["seed_ejected"] = seed is not None
    fqdn = opts.fqdn or (seed.fqdn if seed else None)
    result["url"] = f"https://{fqdn}/ovirt-engine/" if fqdn else None
    if opts.health_check:
        # urllib (with ssl and http.client) is ~50 ms of start-up that only this option needs.
        from builder.launch.health import health_url, wait_for_health  # noqa: PLC0415

        url = opts.health_url or health_url(str(fqdn))
        console.step(f"waiting for the engine's health page {url}")
        with run.timer.phase("health"):
            wait_for_health(url, opts.health_timeout)
        result["health"] = "up"


def _remove_seed(seed: SeedPlan, outcome: Outcome, console: Console) -> None:
    """The seed copies go, unless a failed domain is kept (it still points at them)."""
    if outcome.domain_kept:
        console.note(f"kept the seed for the kept domain: {seed.iso}")
        return
    remove_copies(seed)


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
