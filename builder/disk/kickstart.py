"""Render the appliance kickstart from its Jinja2 template, escaping every value for kickstart."""

from __future__ import annotations

import difflib
import logging
import re
import shlex
import unicodedata
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import jinja2

from builder.errors import InputError, MissingPrerequisiteError
from builder.inventory.source import Path_, dotted
from builder.resources import KICKSTART_DIR, appliance_file
from builder.templates import text_environment

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "ovirt-engine-appliance.ks.j2"
# The partitioning (snippets/storage.ks.j2) needs 50.6 GiB: biosboot 1 MiB, EFI system
# partition 600 MiB, /boot 1 GiB and the LVM physical volume's 49 GiB (its volumes take 48).
MIN_DISK_GIB = 51
# hosted-engine copies the appliance disk onto the engine VM's disk (`qemu-img convert -n`),
# 61 GiB by default (the role's he_disk_size_GB): a larger appliance disk does not fit.
MAX_DISK_GIB = 61
DEFAULT_DISK_GIB = 51  # oVirt's own appliance disk
KickstartVersion = Literal["RHEL9", "RHEL10"]
AuthselectProfile = Literal["minimal", "local"]
# authselect's profile without SSSD: `minimal` on EL9, renamed `local` on EL10.
AUTHSELECT_BY_VERSION: dict[KickstartVersion, AuthselectProfile] = {
    "RHEL9": "minimal", "RHEL10": "local"}
# The appliance's own engine-setup answers, shipped as /root/ovirt-engine-answers.
APPLIANCE_ANSWERS = "ovirt-engine-answers"

_WORD = re.compile(r"[A-Za-z0-9_+@*][A-Za-z0-9._+*-]*\Z")
# Control characters, and the other line ends Python's str.splitlines() (so pykickstart, and
# Anaconda through it) breaks lines at: NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR.
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*\Z")
_URL = re.compile(r"(https?|ftp|nfs|file|hd|cdrom):\S+\Z")
_CRYPT_HASH = re.compile(r"\$(6|5|y|2b)\$[./A-Za-z0-9$=,]+\Z")


class KsSafe(str):
    """A value already escaped for kickstart; the template refuses anything else."""


# Kickstart commands whose arguments can hold a password, a LUKS passphrase, a Wi-Fi key, an
# activation key or a URL's credentials.
SECRET_COMMANDS = frozenset({
    "rootpw", "user", "bootloader", "sshpw", "url", "repo", "liveimg", "ostreesetup",
    "ostreecontainer", "network", "autopart", "part", "partition", "logvol", "raid", "rhsm",
})
_OPTION_NAME = re.compile(r"--?[A-Za-z][\w-]*")
# What separates the words pykickstart quotes in a message: `['a', 'b']`, `arguments: a b`,
# `--name=value`.
_MESSAGE_TOKEN = re.compile(r"[\s\[\]',\"():=]+")

# The control characters str.isspace() counts, which have no name in unicodedata.
_CONTROL_SPACE_NAMES = {
    "\x0b": "LINE TABULATION", "\x0c": "FORM FEED", "\x1c": "FILE SEPARATOR",
    "\x1d": "GROUP SEPARATOR", "\x1e": "RECORD SEPARATOR", "\x1f": "UNIT SEPARATOR",
    "\x85": "NEXT LINE",
}


@dataclass(frozen=True)
class Repo:
    name: str
    url: str


@dataclass(frozen=True)
class KickstartInputs:
    """Everything the template receives from a recipe."""

    install_tree: str
    timezone: str = "Etc/UTC"
    root_password_hash: str | None = None
    disk_size_gib: int = DEFAULT_DISK_GIB
    repos: tuple[Repo, ...] = ()
    extra_packages: tuple[str, ...] = field(default=())
    # Installed in %packages so the oVirt repositories stay configured in the image (the
    # kickstart's `repo` lines only serve the installation).
    release_package: str = "centos-release-ovirt45"
    authselect_profile: AuthselectProfile = "minimal"


def ks_arg(value: object) -> KsSafe:
    """One kickstart command argument, double-quoted the way pykickstart's shlex reads it."""
    text = str(value)
    if _UNSAFE_CHARS.search(text):
        raise InputError(f"kickstart value contains a control character or newline: {text!r}")
    if text == "" or text.startswith("-"):
        raise InputError(f"kickstart value is empty or looks like an option: {text!r}")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return KsSafe(f'"{escaped}"')


def ks_word(value: object) -> KsSafe:
    """A bare word (package or repository name): letters, digits and `._+-*@` only."""
    text = str(value)
    if not _WORD.match(text):
        raise InputError(f"not a valid kickstart name (package or repo): {text!r}")
    return KsSafe(text)


def ks_heredoc(value: object, delimiter: str) -> KsSafe:
    """Constant text for a quoted here-document (`<<'DELIMITER'`) in a %post script, kept byte
    for byte: whole lines, none of which could end the here-document or the section."""
    text = str(value)
    if not text.endswith("\n"):
        raise InputError("here-document text must end with a newline")
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        if _UNSAFE_CHARS.search(line.replace("\t", " ")):
            raise InputError(f"here-document line {number} has a control character or a line "
                             f"end other than \\n: {line!r}")
        if line == delimiter:
            raise InputError(f"here-document line {number} is its delimiter {delimiter!r}")
        if line.lstrip().startswith("%"):
            raise InputError(f"here-document line {number} starts with %, which the kickstart "
                             f"parser reads as a section: {line!r}")
    return KsSafe(text)


def appliance_answers() -> str:
    """builder/data/appliance/ovirt-engine-answers: the one copy of the appliance's answers."""
    return appliance_file(APPLIANCE_ANSWERS).read_text(encoding="utf-8")


def _refuse_unescaped(value: Any) -> Any:
    # Jinja2 calls this on every {{ expression }}: a value that skipped the filters stops here.
    if isinstance(value, KsSafe) or value is None or value == "":
        return value
    raise InputError(f"kickstart template printed a value without ks_arg/ks_word: {value!r}")


def _environment(template_dirs: Sequence[Path]) -> jinja2.Environment:
    # Kickstart is not HTML: the finalize hook forces ks_arg/ks_word on every value instead.
    return text_environment(
        template_dirs=template_dirs,
        filters={"ks_arg": ks_arg, "ks_word": ks_word, "ks_heredoc": ks_heredoc},
        finalize=_refuse_unescaped,
    )


@dataclass(frozen=True)
class InputProblem:
    """A value the kickstart refuses: the field of KickstartInputs (`("repos", 0, "url")`) and
    why."""

    field: Path_
    message: str

    def __str__(self) -> str:
        return f"{dotted(self.field)}: {self.message}"


def check_inputs(inputs: KickstartInputs) -> list[InputProblem]:
    """Problems with the recipe's values, one each (empty when all is well)."""
    problems: list[InputProblem] = []

    def refuse(message: str, *field: str | int) -> None:
        problems.append(InputProblem(field, message))

    if not _URL.match(inputs.install_tree):
        refuse(f"not a URL: {inputs.install_tree!r}", "install_tree")
    if not _TIMEZONE.match(inputs.timezone):
        refuse(f"not a zone name: {inputs.timezone!r}", "timezone")
    if inputs.root_password_hash and not _CRYPT_HASH.match(inputs.root_password_hash):
        refuse("not a crypt(3) hash ($6$..., $y$...)", "root_password_hash")
    if inputs.disk_size_gib < MIN_DISK_GIB:
        refuse(f"{inputs.disk_size_gib} is below {MIN_DISK_GIB} (what the partitioning needs)",
               "disk_size_gib")
    if inputs.disk_size_gib > MAX_DISK_GIB:
        refuse(f"{inputs.disk_size_gib} is above {MAX_DISK_GIB}: hosted-engine copies the "
               "appliance onto a 61 GiB engine disk", "disk_size_gib")
    if not _WORD.match(inputs.release_package):
        refuse(f"not a package name: {inputs.release_package!r}", "release_package")
    if inputs.authselect_profile not in get_args(AuthselectProfile):
        refuse(f"not one of {', '.join(get_args(AuthselectProfile))}: "
               f"{inputs.authselect_profile!r}", "authselect_profile")
    for index, repo in enumerate(inputs.repos):
        if not _URL.match(repo.url):
            refuse(f"not a URL: {repo.url!r}", "repos", index, "url")
        if not _WORD.match(repo.name):
            refuse(f"not a valid name: {repo.name!r}", "repos", index, "name")
    for index, name in enumerate(inputs.extra_packages):
        if not _WORD.match(name):
            refuse(f"not a package name: {name!r}", "extra_packages", index)
    return problems


def render_kickstart(
    inputs: KickstartInputs,
    *,
    template_dir: Path = KICKSTART_DIR,
    include_dirs: Sequence[Path] = (),
    template: str = DEFAULT_TEMPLATE,
) -> str:
    """The kickstart text; refuses bad values before rendering (InputError with every problem)."""
    problems = check_inputs(inputs)
    if problems:
        raise InputError("invalid kickstart inputs", problems=[str(p) for p in problems])
    try:
        loaded = _environment((template_dir, *include_dirs)).get_template(template)
    except jinja2.TemplateNotFound as exc:
        raise InputError(f"kickstart template not found: {template_dir / template}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"broken kickstart template {exc.filename}:{exc.lineno}: {exc}") from exc
    try:
        return loaded.render(
            install_tree=inputs.install_tree,
            timezone=inputs.timezone,
            root_password_hash=inputs.root_password_hash or "",
            repos=inputs.repos,
            extra_packages=inputs.extra_packages,
            release_package=inputs.release_package,
            authselect_profile=inputs.authselect_profile,
            appliance_answers=appliance_answers(),
        )
    except jinja2.TemplateError as exc:
        raise InputError(f"kickstart template {template}: {exc}") from exc


def validate_kickstart(text: str, *, version: str | None = None) -> Any:
    """Parse `text` with pykickstart for `version` (e.g. RHEL9; None: the newest), as
    ksvalidator does: `%include` is not followed (Anaconda reads it inside the installer,
    often a file `%pre` wrote; here it would be a file of this host, or a download).
    InputError names what it refused; returns pykickstart's handler, holding the commands."""
    try:
        from pykickstart.errors import KickstartError  # noqa: PLC0415 - optional dependency
        from pykickstart.parser import KickstartParser  # noqa: PLC0415
        from pykickstart.version import makeVersion  # noqa: PLC0415
    except ImportError as exc:
        raise MissingPrerequisiteError(
            "pykickstart is not installed", hint="pip install pykickstart"
        ) from exc
    parser = KickstartParser(makeVersion(version) if version else makeVersion(),
                             followIncludes=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser.readKickstartFromString(text)
        except KickstartError as exc:
            problem = parse_problem(exc, text, known=known_words(parser))
            # Not chained: pykickstart's own message, which --debug's traceback would print,
            # quotes the words `problem` leaves out.
            raise InputError(f"kickstart rejected by pykickstart: {problem}") from None
        except Exception as exc:  # pykickstart failing on a line it cannot read
            raise InputError(f"kickstart rejected by pykickstart: {_failure(exc, parser, text)}") \
                from exc
    for warning in caught:  # duplicates, deprecations: Anaconda goes on, with a warning
        log.warning("kickstart: %s", warning.message)
    return parser.handler


def _failure(exc: Exception, parser: Any, text: str) -> str:
    """shlex's ValueError (`No closing quotation`) as it is; any other exception pykickstart
    lets out (an IndexError on a lone `-` in %packages) by its type too, at the line the
    parser was reading (a section's header, for a line inside it)."""
    what = str(exc) if type(exc) is ValueError else \
        f"pykickstart cannot read it ({type(exc).__name__}: {exc})"
    number = _line_number(text, getattr(parser, "_line", None))
    return what if number is None else line_problem(number, what, text)


def _line_number(text: str, line: object) -> int | None:
    """The number of the first line that is `line`, as the parser read it (line end kept)."""
    for number, candidate in enumerate(text.splitlines(keepends=True), start=1):
        if candidate == line:
            return number
    return None


def known_words(parser: Any) -> frozenset[str]:
    """The command names and section headers (`%packages`) the kickstart version of `parser`
    knows."""
    return frozenset([*parser.handler.commands, *getattr(parser, "_sections", {})])


def version_words(version: str) -> frozenset[str]:
    """known_words of pykickstart's parser for `version` (RHEL9): for ksvalidator's output."""
    from pykickstart.parser import KickstartParser  # noqa: PLC0415 - optional dependency
    from pykickstart.version import makeVersion  # noqa: PLC0415

    return known_words(KickstartParser(makeVersion(version)))


def parse_problem(exc: Exception, text: str, *, known: Collection[str] = ()) -> str:
    """pykickstart's complaint on one line: `line N: what`. About a line of a command that can
    hold a password (`text` is the kickstart it parsed), a complaint quoting the line's
    arguments is cut to its first clause: the words it quoted may be a password's. A line
    whose first word is none of `known` (the commands and sections) is not quoted at all."""
    message = " ".join(str(getattr(exc, "message", "") or exc).split()) or "(no message)"
    lineno = getattr(exc, "lineno", None)
    return message if lineno is None else line_problem(lineno, message, text, known=known)


def line_problem(number: int, message: str, text: str, *, known: Collection[str] = ()) -> str:
    """`line N: message`, pykickstart's complaint about line `number` of the kickstart `text`,
    without the words of a line that can hold a password, nor an unknown first word."""
    lines = text.splitlines(keepends=True)  # a line end shlex keeps stays in the last word
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    unknown = _unknown_first_word(message, line, known)
    if unknown is not None:
        return f"line {number}: {unknown}"
    return f"line {number}: {_without_secret_words(message, line)}"


def _unknown_first_word(message: str, line: str, known: Collection[str]) -> str | None:
    """What to say of a line whose first word is no command nor section of `known`, which the
    message names as its last words (`Unknown command: WORD`, `Unknown kickstart section:
    WORD`; a complaint about a script line, `Section %post does not end with %end.`, is left
    as it is): the word is not repeated, for a file that is not a kickstart at all (a password
    file given by mistake) would have its first line printed. The command it is close to is
    named instead, when there is one. A known word with a character in it that Python takes
    for a space and shlex does not (U+2028, a no-break space) is named with that character:
    pykickstart's own `Unknown command: text` shows none of it."""
    words = _command_words(line)
    if not known or not words or words[0] in known:
        return None
    parts = words[0].split()  # as the message shows the word: its spaces collapsed
    if not message.endswith(": " + " ".join(parts)):
        return None
    what = "section" if words[0].startswith("%") else "command"
    hidden = _hidden_spaces(words[0])
    if hidden and "".join(parts) in known:
        return (f"unknown {what}: {''.join(parts)} with {hidden} in it, a character kickstart "
                "does not take for a space (delete it)")
    close = difflib.get_close_matches(
        words[0], [word for word in known if word.startswith("%") == (what == "section")],
        n=1, cutoff=0.75)
    if close:
        return f"unknown {what} (did you mean {close[0]}?)"
    return (f"unknown {what} (the word is not shown: a file that is not a kickstart may hold a "
            "secret)")


def _hidden_spaces(word: str) -> str:
    """The characters of a shlex word that Python takes for spaces (a no-break space, or a line
    end of str.splitlines() such as U+2028 that pykickstart leaves in the line's last word),
    each as `U+2028 (LINE SEPARATOR)`; "" when there is none."""
    hidden = dict.fromkeys(char for char in word if char.isspace() and char not in " \t\r\n")
    return ", ".join(_character_name(char) for char in hidden)


def _character_name(char: str) -> str:
    name = unicodedata.name(char, "") or _CONTROL_SPACE_NAMES.get(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _without_secret_words(message: str, line: str) -> str:
    """`message`, cut to its first clause when the line's command can hold a password and the
    message quotes anything of the line's arguments (or a word escaped, as a repr does)."""
    words = _command_words(line)
    if not words or words[0] not in SECRET_COMMANDS:
        return message
    arguments = " ".join([*line.split(None, 1)[1:], *words[1:]])
    quoted = [token for token in _MESSAGE_TOKEN.split(message)
              if token and not _OPTION_NAME.fullmatch(token)]
    if not any(token in arguments or "\\" in token for token in quoted):
        return message
    return (f"{message.split(':', 1)[0]} (the arguments are not shown: the {words[0]} "
            "command can hold a password)")


def _command_words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: pykickstart's own complaint then quotes nothing
        return line.split()


def check_finishes(handler: Any) -> None:
    """Refuse a kickstart that leaves the installer waiting at the end (no poweroff/reboot):
    the build waits for the installer VM to stop. `handler`: validate_kickstart's."""
    from pykickstart import constants  # noqa: PLC0415 - optional dependency

    if handler.reboot.action not in (constants.KS_SHUTDOWN, constants.KS_REBOOT):
        raise InputError("the kickstart does not end with poweroff (or reboot): "
                         "the installer would wait forever")


def kickstart_available() -> bool:
    """Whether `validate_kickstart` can run here (pykickstart importable)."""
    try:
        import pykickstart  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True

