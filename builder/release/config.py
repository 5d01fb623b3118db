"""The release file (pipelines/release.yaml): read with line numbers, validated against pydantic
models that refuse unknown keys, every problem reported before anything runs, one line each
(`FILE:LINE: field: message`). Paths in it are relative to the file's directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from builder.console import counted
from builder.errors import InputError
from builder.gpg import AgentKey, agent_fingerprint, is_agent_reference
from builder.inventory.counts import Count
from builder.inventory.problems import in_line_order, model_problems, pydantic_message
from builder.inventory.source import key_problems, read_yaml_file, text_keys_only
from builder.inventory.syntax import check_line

MAX_RELEASE_BYTES = 1 << 20
# A key or passphrase reference: env:NAME (a variable holding the path, or the passphrase) or
# file:PATH. Never the secret itself.
REFERENCE_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[^\x00-\x1f]+)$"
# A signing key may also be agent:FINGERPRINT: a secret key in the operator's own GnuPG home,
# unlocked in its running gpg-agent (the fingerprint is checked by `_agent_fingerprint`).
KEY_REFERENCE_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[^\x00-\x1f]+|agent:[^\x00-\x1f]*)$"
REPO_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
SITE_PATTERN = r"^[a-z][a-z0-9-]*$"
RPM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
KICKSTART_VERSION = Literal["RHEL9", "RHEL10"]
MESSAGES = {
    REFERENCE_PATTERN: "must be a reference (env:NAME or file:PATH), never a literal value",
    KEY_REFERENCE_PATTERN: "must be a reference (env:NAME, file:PATH or agent:FINGERPRINT), "
                           "never a literal value",
    REPO_ID_PATTERN: "letters, digits and _.:- only: {input!r}",
    SITE_PATTERN: "{input!r} is not a site name (lowercase letters, digits and '-')",
    RPM_NAME_PATTERN: "not an RPM name: {input!r}",
}
Line = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        return check_line(value)


class OvaSection(Strict):
    layouts: tuple[Literal["ovirt", "ovf"], ...] = Field(("ovirt", "ovf"), min_length=1)
    compression: Literal["none", "zlib", "zstd"] = "zlib"


class RpmSection(Strict):
    name: str = Field("ovirt-engine-appliance", pattern=RPM_NAME_PATTERN)
    payload: Literal["speed", "size"] = "speed"


def _agent_fingerprint(value: str) -> str:
    if is_agent_reference(value):
        agent_fingerprint(value)
    return value


KeyReference = Annotated[str, Field(pattern=KEY_REFERENCE_PATTERN),
                         AfterValidator(_agent_fingerprint)]


class SigningSection(Strict):
    """Each list is tried in order: the first reference that is set (a variable), present
    (a file) or held by the operator's gpg-agent (agent:FINGERPRINT) is used."""

    key: tuple[KeyReference, ...] = Field(min_length=1)
    passphrase: tuple[Annotated[str, Field(pattern=REFERENCE_PATTERN)], ...] = ()
    fingerprint: str | None = Field(None, pattern=r"^[0-9A-Fa-f ]{16,50}$")


class SmokeSection(Strict):
    inventory: Line
    site: str = Field(pattern=SITE_PATTERN)
    memory_mib: Count = Field(1024, ge=512, le=65536)
    vcpus: Count = Field(1, ge=1, le=64)
    uri: Line = "qemu:///system"
    storage: Line = "/var/tmp/he-release-smoke"
    boot_timeout: Count = Field(900, ge=10, le=86400)
    setup_timeout: Count = Field(900, ge=10, le=86400)


class GatesSection(Strict):
    ova_verify: bool = True
    rpmlint: bool = True
    rpmlint_allow: tuple[Line, ...] = ()
    ovf_schema: bool = True
    kickstart: tuple[KICKSTART_VERSION, ...] = ("RHEL9",)
    cloud_init_schema: bool = True


class RepoSection(Strict):
    id: str = Field("ovirt-appliance", pattern=REPO_ID_PATTERN)
    name: Line = "oVirt engine appliance"
    base_url: str | None = Field(None, pattern=r"^(https?|file)://[^\s\"'<>\\]+$")
    key_name: str = Field("RPM-GPG-KEY-ovirt-appliance", pattern=RPM_NAME_PATTERN)


class ReleaseModel(Strict):
    recipe: Line
    ova: OvaSection = OvaSection()
    rpm: RpmSection = RpmSection()
    signing: SigningSection
    smoke: SmokeSection
    gates: GatesSection = GatesSection()
    repo: RepoSection = RepoSection()
    publish: Line = "publish"

    @field_validator("ova")
    @classmethod
    def _unique_layouts(cls, value: OvaSection) -> OvaSection:
        if len(set(value.layouts)) != len(value.layouts):
            raise ValueError("a layout is listed twice")
        return value


@dataclass(frozen=True)
class ReleaseFile:
    """The validated release file and where it is (relative paths are taken from `base`)."""

    path: Path
    model: ReleaseModel

    @property
    def base(self) -> Path:
        return self.path.absolute().parent

    def resolve(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.base / path

    def recipe_reference(self) -> str:
        """A bundled recipe name as is; a path (with / or .yaml) from the file's directory."""
        value = self.model.recipe
        if "/" in value or value.endswith((".yaml", ".yml")):
            return str(self.resolve(value))
        return value


def all_field_names() -> set[str]:
    names: set[str] = set()
    for model in (ReleaseModel, OvaSection, RpmSection, SigningSection, SmokeSection,
                  GatesSection, RepoSection):
        names.update(model.model_fields)
    return names


def problem_message(error: Mapping[str, Any]) -> str:
    return pydantic_message(error, fields=all_field_names(), patterns=MESSAGES)


def load_release(path: Path) -> ReleaseFile:
    """Read and validate the release file; InputError listing every problem (exit 2)."""
    tree = read_yaml_file(path, what="release file", limit=MAX_RELEASE_BYTES,
                          hint="a YAML file")
    problems = key_problems(path, tree)
    tree = text_keys_only(tree)
    if not isinstance(tree, dict):
        raise InputError(f"release file {path} has 1 problem",
                         problems=[f"{path}:1: expected a mapping of release settings"])
    model: ReleaseModel | None = None
    try:
        model = ReleaseModel.model_validate(tree)
    except ValidationError as exc:
        problems += in_line_order(model_problems(path, tree, exc.errors(include_url=False),
                                                 problem_message))
    if problems or model is None:
        raise InputError(f"release file {path} has {counted(len(problems), 'problem')}",
                         problems=problems)
    return ReleaseFile(path, model)


# Why an agent key cannot be used ("no secret key ... in HOME"), None when it can.
AgentCheck = Callable[[AgentKey], str | None]


def first_reference(references: Sequence[str], env: Mapping[str, str],
                    release: ReleaseFile) -> str | None:
    """The first reference that is set: `env:NAME` with NAME in the environment, or
    `file:PATH` naming an existing file. Relative file paths become absolute."""
    for reference in references:
        kind, _, value = reference.partition(":")
        if kind == "env" and env.get(value):
            return reference
        if kind == "file" and release.resolve(value).exists():
            return f"file:{release.resolve(value)}"
    return None


def signing_key_source(release: ReleaseFile, env: Mapping[str, str],
                       agent_check: AgentCheck) -> Path | AgentKey:
    """The first usable `signing.key` reference: a key file (`env:NAME` names a variable
    holding its path), or an agent key that `agent_check` finds in the operator's home."""
    signing = release.model.signing
    tried: list[str] = []
    for reference in signing.key:
        kind = reference.partition(":")[0]
        if is_agent_reference(reference):
            agent = AgentKey.from_reference(reference, env)
            reason = agent_check(agent)
            if reason is None:
                return agent
            tried.append(f"{reference} ({reason})")
            continue
        tried.append(reference)
        chosen = first_reference([reference], env, release)
        if chosen is not None:
            _, _, found = chosen.partition(":")
            return Path(env[found]) if kind == "env" else Path(found)
    raise InputError(f"{release.path}: signing.key: none of {', '.join(tried)} is set or "
                     "exists")


def passphrase_reference(release: ReleaseFile, env: Mapping[str, str]) -> str | None:
    signing = release.model.signing
    if not signing.passphrase:
        return None
    chosen = first_reference(signing.passphrase, env, release)
    if chosen is None:
        tried = ", ".join(signing.passphrase)
        raise InputError(f"{release.path}: signing.passphrase: none of {tried} is set or "
                         "exists")
    return chosen

