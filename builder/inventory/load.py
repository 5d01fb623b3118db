"""Load and validate the inventory file: every problem found before any work, one line each."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from builder.console import counted
from builder.errors import InputError
from builder.inventory.checks import check_conflicts, check_network, check_site
from builder.inventory.fields import check
from builder.inventory.models import PATTERN_MESSAGES, SITE_NAME_PATTERN, Network, Site
from builder.inventory.problems import Problem
from builder.inventory.secrets import SecretFiles, SiteSecrets, resolve_site_secrets
from builder.inventory.source import (
    LineDict,
    OtherKey,
    Path_,
    dotted,
    duplicate_keys,
    line_of,
    path_key,
    read_yaml_file,
)
from builder.resources import EXAMPLE_INVENTORY

# The bundled example (examples/inventory.yaml), from a checkout or an installed wheel.
DEFAULT_INVENTORY: Path = EXAMPLE_INVENTORY

# Far above any real inventory (1,000 sites take about 0.4 MiB), low enough to read at once.
MAX_INVENTORY_BYTES = 16 * 1024 * 1024
TOP_LEVEL_KEYS = ("defaults", "sites")
NOT_IN_DEFAULTS = ("name", "fqdn", "instance_id")
# Stand-ins so the defaults can be validated alone, without the fields only a site has.
DEFAULTS_PROBE = {"name": "defaults", "fqdn": "defaults.invalid",
                  "root_password": "prompt", "admin_password": "prompt"}


@dataclass(frozen=True)
class Inventory:
    """The validated inventory: sites in file order, defaults merged, MACs filled in."""

    path: Path
    sites: Mapping[str, Site]
    secret_files: SecretFiles

    @property
    def base_dir(self) -> Path:
        """Where relative `file:` secret references are resolved: the inventory's directory."""
        return self.secret_files.base_dir

    def resolve_secrets(self, site: Site, *, env: Mapping[str, str],
                        prompt: Callable[[str], str] | None) -> SiteSecrets:
        """`site`'s secrets under this inventory's `file:` policy (its directory, the
        directories allowed when it was loaded): what `seed` and `he-launch` both use."""
        return resolve_site_secrets(site, self.secret_files, env=env, prompt=prompt)


@dataclass
class Report:
    """The problems of one load, each already formatted as `FILE:LINE: [scope: ]FIELD: msg`."""

    file: str
    lines: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int | None, scope: str, path: Path_, message: str) -> None:
        subject = named(scope, path)
        text = f"{self.file}:{line or 1}: " + (f"{subject}: " if subject else "")
        self.lines.append((line or 1, text + message))

    def raise_if_any(self) -> None:
        if not self.lines:
            return
        problems = [text for _, text in sorted(self.lines, key=lambda item: item[0])]
        raise InputError(f"inventory {self.file} has {counted(len(problems), 'problem')}",
                         problems=problems)


# Called with each site that has passed its own checks, as soon as it has (the checks across
# sites come after the last one), and the inventory's `file:` policy: a caller may start on it
# while the rest loads (builder.seed.ahead).
SiteLoaded = Callable[[Site, SecretFiles], None]


def load_inventory(path: Path, *, allow_secrets_from: Sequence[Path] = (),
                   on_site: SiteLoaded | None = None) -> Inventory:
    """Read, parse and validate `path`; raise one InputError listing every problem.

    `allow_secrets_from`: directories outside the inventory's own from which `file:` secrets
    may be read (checked here without reading them). `on_site`: see SiteLoaded.
    """
    report = Report(str(path))
    tree = read_tree(path)
    files = SecretFiles.create(path.absolute().parent, allow_secrets_from)
    report_duplicates(tree, report)
    defaults, entries = split_top_level(tree, report)
    defaults = check_defaults(defaults, report)
    sites: list[Site] = []
    derived: set[str] = set()
    for name, raw in entries.items():
        entry = SiteEntry(name, raw, entries.key_lines[name], defaults)
        site = build_site(entry, report, files)
        if site is None:
            continue
        if site.network.mac is None:
            derived.add(site.name)
        sites.append(site)
        if on_site is not None:
            on_site(site, files)
    for name, problem in check_conflicts(sites, derived):
        SiteEntry(name, entries[name], entries.key_lines[name], defaults).report(report, problem)
    report.raise_if_any()
    return Inventory(path=path, sites=MappingProxyType({site.name: site for site in sites}),
                     secret_files=files)


def read_tree(path: Path) -> Any:
    """The parsed YAML of a regular file of at most MAX_INVENTORY_BYTES, in UTF-8."""
    return read_yaml_file(path, what="inventory", limit=MAX_INVENTORY_BYTES,
                          hint="the inventory is a YAML file", describe=field_of)


def report_duplicates(tree: Any, report: Report) -> None:
    """Duplicate keys anywhere; YAML would silently keep the last one."""
    for path, line, first in duplicate_keys(tree):
        scope, rest = scope_of(path)
        what = "duplicate site" if path[:-1] == ("sites",) else "duplicate key"
        report.add(line, scope, rest, f"{what} (first at line {first})")


def scope_of(path: Path_) -> tuple[str, Path_]:
    """('sites', 'dc1', 'vcpus') -> ('site dc1', ('vcpus',)); defaults likewise."""
    if len(path) >= 2 and path[0] == "sites":
        return f"site {path[1]}", path[2:]
    if path and path[0] == "defaults":
        return "defaults", path[1:]
    return "", path


def named(scope: str, path: Path_) -> str:
    """('site dc1', ('network', 'mode')) -> 'site dc1: network.mode'; either may be empty."""
    return ": ".join(part for part in (scope, dotted(path)) if part)


def field_of(path: Path_) -> str:
    """('sites', 'dc1', 'vcpus') -> 'site dc1: vcpus', as the inventory's problems name it."""
    return named(*scope_of(path))


def split_top_level(tree: Any, report: Report) -> tuple[LineDict, LineDict]:
    """The `defaults` and `sites` mappings (empty when absent or wrong)."""
    empty = LineDict(1)
    if not isinstance(tree, LineDict):
        report.add(1, "", (), "the inventory must be a mapping with 'sites:' (and 'defaults:')")
        return empty, empty
    for key in tree:
        if key not in TOP_LEVEL_KEYS:
            report.add(tree.key_lines[key], "", (path_key(key),),
                       "unknown top-level key (expected 'defaults' or 'sites')")
    defaults = top_level_mapping(tree, "defaults", report, required=False)
    sites = top_level_mapping(tree, "sites", report, required=True)
    return defaults, sites


def top_level_mapping(tree: LineDict, key: str, report: Report, *, required: bool) -> LineDict:
    value = tree.get(key)
    if value is None and not required:
        return LineDict(tree.key_lines.get(key, 1))
    line = tree.key_lines.get(key, 1)
    if required and (value is None or value == {}):
        report.add(line, "", (key,), "no site: the inventory needs at least one (site names "
                   "as keys, each with its fields)")
        return LineDict(line)
    if not isinstance(value, LineDict):
        report.add(line, "", (key,), "expected a mapping of site names to sites" if required
                   else "expected a mapping of site fields")
        return LineDict(line)
    return value


def check_defaults(defaults: LineDict, report: Report) -> LineDict:
    """Validate the defaults once, alone; return them without the fields that have problems.

    So a bad default is reported once, not again for every site, and the sites are still
    checked with the rest.
    """
    bad: set[Any] = {key for key in NOT_IN_DEFAULTS if key in defaults}
    for key in sorted(bad):
        report.add(defaults.key_lines[key], "defaults", (key,), "set per site, not in defaults")
    _, problems = check(Site, {**DEFAULTS_PROBE, **without(defaults, bad)})
    for problem in problems:
        line, _ = line_of(defaults, problem.path)
        report.add(line or defaults.line, "defaults", problem.path, problem.message)
        if problem.path:
            first = problem.path[0]
            bad.add(first.value if isinstance(first, OtherKey) else first)
    return without(defaults, bad)


def without(mapping: LineDict, keys: set[Any]) -> LineDict:
    kept = LineDict(mapping.line)
    for key, value in mapping.items():
        if key not in keys:
            kept[key], kept.key_lines[key] = value, mapping.key_lines[key]
    return kept


@dataclass(frozen=True)
class SiteEntry:
    """A site as written: its raw mapping, the line of its name, and the defaults under it."""

    name: Any
    raw: Any
    line: int
    defaults: LineDict

    def line_of(self, path: Path_) -> int:
        """The offending key in the site, else in the defaults, else its closest parent."""
        line, complete = line_of(self.raw, path)
        if complete and line is not None:
            return line
        default_line, in_defaults = line_of(self.defaults, path)
        if in_defaults and default_line is not None:
            return default_line
        return line or self.line

    def report(self, report: Report, problem: Problem) -> None:
        report.add(self.line_of(problem.path), f"site {path_key(self.name)}", problem.path,
                   problem.message)


def build_site(entry: SiteEntry, report: Report, files: SecretFiles | None = None) -> Site | None:
    """One site: defaults merged under it, validated; None when it has problems."""
    shape = check_entry_shape(entry)
    if shape is not None:
        entry.report(report, shape)
        return None
    merged = {**deep_merge(entry.defaults, entry.raw), "name": entry.name}
    site, problems = check(Site, merged)
    if site is None:
        for problem in [*problems, *check_network_alone(merged)]:
            entry.report(report, problem)
        return None
    rules = check_site(site, files)
    for problem in rules:
        entry.report(report, problem)
    return None if rules else site


def check_network_alone(merged: Mapping[str, Any]) -> list[Problem]:
    """When other fields fail, still check the network section, so all problems show at once."""
    network, _ = check(Network, merged.get("network", {}))
    if network is None:
        return []  # already reported by the site's validation
    return check_network(network)


def check_entry_shape(entry: SiteEntry) -> Problem | None:
    """A site name the record can't see (it is a key) and a body that must be a mapping."""
    if not isinstance(entry.name, str):
        return Problem(("name",), non_text_name(entry.name))
    if not re.match(SITE_NAME_PATTERN, entry.name):
        return Problem(("name",), PATTERN_MESSAGES[SITE_NAME_PATTERN].format(input=entry.name))
    if not isinstance(entry.raw, LineDict):
        return Problem((), "expected a mapping of site fields (at least fqdn)")
    if "name" in entry.raw:
        return Problem(("name",), "not a field: the site's name is its key under 'sites'")
    return None


def non_text_name(name: object) -> str:
    """Why a key YAML read as null, a boolean or a number is no site name."""
    if name is None or isinstance(name, bool):
        kind = "null" if name is None else "a boolean"
        return f"YAML reads this key as {kind}, not as text: quote it to make it a site name"
    return ("YAML reads this key as a number, not as text: a site name is lowercase letters, "
            "digits and '-', starting with a letter")


def deep_merge(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    """Mappings merge key by key; anything else in `override` replaces the value in `base`."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        merged[key] = deep_merge(old, value) if both else value  # type: ignore[arg-type]
    return merged


def select_sites(inv: Inventory, names: Sequence[str], all_sites: bool) -> list[Site]:
    """The sites named (in the order given, once each), or all of them in file order."""
    if all_sites:
        return list(inv.sites.values())
    unknown = [name for name in names if name not in inv.sites]
    if unknown:
        known = ", ".join(inv.sites) or "none"
        noun = "site" if len(unknown) == 1 else "sites"
        raise InputError(f"inventory {inv.path} has no {noun} {', '.join(unknown)} "
                         f"(known: {known})")
    if not names:
        raise InputError("no site chosen", hint="use --site NAME (repeatable) or --all")
    return [inv.sites[name] for name in dict.fromkeys(names)]
