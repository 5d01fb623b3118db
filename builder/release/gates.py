"""Release gates: each checks one artifact with the tool its consumers trust and returns a
typed verdict (a failed check is a result, not an exception; a missing tool is an error)."""

from __future__ import annotations

import re
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from builder.atomic import write_atomic
from builder.disk.kickstart import line_problem, version_words
from builder.errors import InputError, IntegrityError, MissingPrerequisiteError
from builder.resources import OVF_SCHEMA_DIR
from builder.run import require_tool, run

OVF_ENVELOPE_XSD = "dsp8023_1.1.0.xsd"
KICKSTART_VERSIONS = ("RHEL9", "RHEL10")
RPMLINT_LINE = re.compile(r"^(?P<package>\S+): (?P<level>[EW]): (?P<check>\S+)(?P<rest>.*)$")
# Debian's cloud-init .deb, unpacked by scripts/setup.sh (never installed on the build host).
CLOUD_INIT_DIR = Path("opt") / "cloud-init"
CLOUD_INIT_SITE = Path("usr") / "lib" / "python3" / "dist-packages"
MAX_OVF_BYTES = 16 << 20


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: `detail` is one line, fit for a table cell."""

    name: str
    passed: bool
    detail: str


def _first_line(text: str, default: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else default


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")


# --- RPM -------------------------------------------------------------------------------


def check_rpm_signature(rpm: Path, public_key: Path) -> GateResult:
    """rpm's own verdict (`rpmkeys --checksig`) with only `public_key` known: what a host
    with gpgcheck=1 and that key decides."""
    require_tool("rpmkeys", package="rpm")
    _require_file(rpm, "RPM")
    _require_file(public_key, "public key")
    with tempfile.TemporaryDirectory(prefix="he-rpmdb-") as db:
        run(["rpmkeys", "--dbpath", db, "--import", public_key])
        done = run(["rpmkeys", "--dbpath", db, "--checksig", rpm], check=False)
    verdict = done.text.strip().rpartition(": ")[2] or "no output"
    if done.returncode == 0 and verdict.endswith("signatures OK"):
        return GateResult("rpm-signature", True, f"{rpm.name}: {verdict}")
    if done.returncode == 0:
        return GateResult("rpm-signature", False, f"{rpm.name}: not signed ({verdict})")
    return GateResult("rpm-signature", False,
                      f"{rpm.name}: {verdict} with the key in {public_key.name}")


@dataclass(frozen=True)
class LintFinding:
    level: str
    check: str
    text: str


def parse_rpmlint(output: str) -> list[LintFinding]:
    findings = []
    for line in output.splitlines():
        match = RPMLINT_LINE.match(line.strip())
        if match:
            findings.append(LintFinding(match["level"], match["check"], line.strip()))
    return findings


def check_rpmlint(rpm: Path, *, public_key: Path | None = None,
                  allowed: Sequence[str] = ()) -> GateResult:
    """rpmlint reports no error on `rpm`, except the checks named in `allowed`.

    rpmlint checks a signature against the build host's rpmdb, which does not hold the
    release key: with `public_key`, its `unknown-key` error is replaced by a real check of
    the signature against that key."""
    require_tool("rpmlint", package="rpmlint")
    _require_file(rpm, "RPM")
    done = run(["rpmlint", rpm], check=False)
    findings = parse_rpmlint(done.text)
    errors = [f for f in findings if f.level == "E" and f.check not in allowed]
    note = ""
    if public_key is not None and any(f.check == "unknown-key" for f in errors):
        signature = check_rpm_signature(rpm, public_key)
        if not signature.passed:
            return GateResult("rpmlint", False, signature.detail)
        errors = [f for f in errors if f.check != "unknown-key"]
        note = "; signature checked against the release key"
    warnings = sum(1 for f in findings if f.level == "W")
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return GateResult("rpmlint", False, f"{errors[0].text}{more}")
    if done.returncode not in (0, 64, 66) or "checked;" not in done.text:
        return GateResult("rpmlint", False, _first_line(done.stderr.decode(errors="replace"),
                                                        f"rpmlint exited {done.returncode}"))
    return GateResult("rpmlint", True, f"{rpm.name}: 0 errors, {warnings} warnings{note}")


# --- OVF -------------------------------------------------------------------------------


def check_ovf_schema(ovf: Path, schema_dir: Path = OVF_SCHEMA_DIR) -> GateResult:
    """The OVF validates against DMTF's OVF 1.1 envelope schema (DSP8023) in `schema_dir`
    (default: the copy shipped from ovf/xsd/), whose imports point at local copies: xmllint
    never touches the network."""
    require_tool("xmllint", package="libxml2-utils")
    _require_file(ovf, "OVF descriptor")
    schema = schema_dir / OVF_ENVELOPE_XSD
    _require_file(schema, "OVF schema")
    done = run(["xmllint", "--nonet", "--noout", "--schema", schema, ovf], check=False)
    stderr = done.stderr.decode("utf-8", errors="replace")
    if done.returncode == 0:
        return GateResult("ovf-schema", True, f"{ovf.name} validates against {schema.name}")
    return GateResult("ovf-schema", False, _first_line(stderr, f"xmllint exited "
                                                               f"{done.returncode}"))


def extract_ovf(ova: Path, dest: Path) -> Path:
    """The OVA's one .ovf descriptor, copied to `dest` (for `check_ovf_schema`)."""
    _require_file(ova, "OVA")
    try:
        with tarfile.open(ova, "r:*") as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and PurePosixPath(m.name).suffix == ".ovf"]
            if len(members) != 1:
                raise IntegrityError(f"{ova}: expected one .ovf member, found {len(members)}")
            if members[0].size > MAX_OVF_BYTES:
                raise IntegrityError(f"{ova}: {members[0].name} is implausibly large")
            handle = tar.extractfile(members[0])
            assert handle is not None
            write_atomic(dest, handle.read())
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"{ova}: not a readable OVA: {exc}") from exc
    return dest


# --- kickstart -------------------------------------------------------------------------


def ksvalidator_path() -> Path:
    """pykickstart's ksvalidator: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "ksvalidator"
    if beside.is_file():
        return beside
    return Path(require_tool("ksvalidator", package="python3-pykickstart"))


_KSVALIDATOR_LINE = re.compile(
    r"The following problem occurred on line (?P<number>\d+) of the kickstart file: (?P<what>.*)")


def check_kickstart(kickstart: Path, version: str) -> GateResult:
    """`ksvalidator -e -v VERSION`: a syntax error, an unknown or deprecated command or
    option for that release (RHEL9, RHEL10) fails the gate."""
    _require_file(kickstart, "kickstart")
    # ksvalidator writes the preprocessed kickstart (rootpw hash included) to a mkstemp file
    # it never removes: it gets a private TMPDIR that goes away with what it left.
    with tempfile.TemporaryDirectory(prefix="he-ksvalidator-") as scratch:
        done = run([sys.executable, ksvalidator_path(), "-e", "-v", version, kickstart],
                   env={"TMPDIR": scratch}, check=False)
    name = f"ksvalidator-{version}"
    if done.returncode == 0:
        return GateResult(name, True, f"{kickstart.name} is valid {version} kickstart")
    lines = [line for line in done.text.splitlines()
             if line.strip() and not line.startswith("Checking kickstart file")]
    detail = _ksvalidator_problem(" ".join(" ".join(lines).split()), kickstart, version)
    return GateResult(name, False, detail[:300] or f"ksvalidator exited {done.returncode}")


def _ksvalidator_problem(output: str, kickstart: Path, version: str) -> str:
    """ksvalidator's `The following problem occurred on line N of the kickstart file: what`
    as `line N: what`, without the words of a line that can hold a password, nor a first word
    that is no command of `version`."""
    match = _KSVALIDATOR_LINE.fullmatch(output)
    if match is None:
        return output
    text = kickstart.read_text(encoding="utf-8", errors="replace")
    return line_problem(int(match["number"]), match["what"], text, known=version_words(version))


# --- cloud-init ------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudInit:
    """Debian's cloud-init package unpacked into `root` (not installed), run by the system
    Python it was built for, which has its dependencies."""

    root: Path
    python: Path = Path("/usr/bin/python3")

    @property
    def script(self) -> Path:
        return self.root / "usr" / "bin" / "cloud-init"

    @property
    def site(self) -> Path:
        return self.root / CLOUD_INIT_SITE


def default_cloud_init() -> CloudInit:
    """Where scripts/setup.sh unpacks it: inside the virtualenv."""
    return CloudInit(Path(sys.prefix) / CLOUD_INIT_DIR)


def cloud_init_version(tool: CloudInit) -> str:
    _check_cloud_init(tool)
    done = run([tool.python, "-s", tool.script, "--version"], env={"PYTHONPATH": str(tool.site)})
    return (done.text or done.stderr.decode()).strip().split()[-1]


def _check_cloud_init(tool: CloudInit) -> None:
    if not tool.script.is_file() or not tool.site.is_dir():
        raise MissingPrerequisiteError(f"cloud-init is not unpacked in {tool.root}",
                                       hint="run scripts/setup.sh")
    if not tool.python.is_file():
        raise MissingPrerequisiteError(f"{tool.python} not found", hint="install python3")


def check_cloud_config(user_data: Path, tool: CloudInit) -> GateResult:
    """`cloud-init schema --config-file`: the user-data is a #cloud-config that cloud-init's
    own schema accepts (no deprecated keys count as errors here; cloud-init reports them)."""
    _require_file(user_data, "user-data")
    _check_cloud_init(tool)
    done = run([tool.python, "-s", tool.script, "schema", "--config-file", user_data],
               env={"PYTHONPATH": str(tool.site)}, check=False)
    if done.returncode == 0:
        return GateResult("cloud-init-schema", True, _first_line(done.text, "valid"))
    stderr = done.stderr.decode("utf-8", errors="replace")
    problems = [line for line in stderr.splitlines() if line.strip() and line.strip() != "Error:"]
    return GateResult("cloud-init-schema", False,
                      " ".join(" ".join(problems).split())[:300] or "invalid cloud-config")
