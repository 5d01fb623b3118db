"""Fuzz campaign: hostile and random inventories through load_inventory and the seed renderer.

    .venv/bin/python -m bench.fuzz_inventory [--cases 5000] [--seed 1] [--jobs 2] [--timeout 20]

Each case is generated from a fixed seed: structure-aware mutations of the bundled example
(wrong types, nasty strings, odd keys, secret references to FIFOs, links, devices, big files),
or raw YAML nastiness (alias bombs, deep nesting, huge integers, control characters, tags,
broken bytes), or a special file as the inventory. Every case runs in its own child process
(fork) with a deadline, so a hang is counted, and so is a crash of the interpreter itself.

Outcomes: clean error (an InputError whose printed lines are one line each), accepted (every
site's seed rendered, its answer file read back the way otopi reads it), hang, crash (the
child died: a signal, or no result), internal error (any other exception, or a rule gap: the
seed refusing an inventory value that `inventory check` accepted). The campaign passes when
hangs, crashes and internal errors are all zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import select
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import run_bench
from builder.cli.handler import error_lines
from builder.errors import InputError
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.seed.answers import check_answers
from builder.seed.master import master_seed

OUTCOMES = ("clean error", "accepted", "hang", "crash", "internal error")
ENV = {"ROOT_PW": "fuzz-root-pw", "ADMIN_PW": "fuzz-admin-pw", "SOURCE_DATE_EPOCH": "0"}
SECRET_FIELDS = ("root_password", "admin_password")

NASTY_TEXT = [
    "", " ", "x ", " x", "\n", "a\nb", "a\rb", "\t", "a\tb", "\x00", "\x07", "\x1b[31m", "\x7f",
    "\x85", "\u2028", "\u2029", "\u202e", "\ufeff", "\ud800", "é", "中文", "😀", "%", "%%",
    "%(x)s", "${x}", "$(reboot)", "`id`", "'", '"', "\\", "#", ";", "[environment:enforce]",
    "key=str:x", "- a", "a: b", "{}", "[]", "*a", "&a", "!!str", "---", "...", "yes", "no",
    "null", "~", "0x1f", "1e999", "0o777", "1_000", "52:54:00:12:34:56", "../../etc/shadow",
    "/dev/zero", "x" * 300, "a" * 70, "he-build: error: fake",
]
NASTY_SCALARS: list[Any] = [None, True, False, 0, -1, 1, 2**63, 10**40, -(10**100), 1.5,
                            float("inf"), float("nan"), [], {}, ["a"], {"a": 1}, [[[]]]]
ODD_KEYS: list[Any] = ["", " ", "\n", "a\nhe-build: fake", "<<", "name", "NAME", "fqdn ",
                       "é", 1, 0, True, None, 1.5, "extra_answers", "network.mode", "vcpus"]
ANSWER_KEYS = ["OVESETUP_X/y", "QUESTION/1/OVESETUP_Y", "QUESTION/0/X", "QUESTION/X",
               "OVESETUP_CONFIG/fqdn", "DIALOG/autoAcceptDefault", "a/b/c", "x", "A/b=c",
               "A/b:c", "[A/b]", "A/ b", "OVESETUP_SYSTEM/memCheckEnabled"]


@dataclass
class Case:
    """One generated input: the inventory (bytes, or a special kind), extra files, options."""

    index: int
    family: str
    inventory: bytes | None = None
    special: str | None = None  # "fifo", "directory", "symlink-loop", "dev-zero", "missing"
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    fifos: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # relative path -> target
    modes: dict[str, int] = field(default_factory=dict)
    allow_outside: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(ENV))


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""
    seconds: float = 0.0


# ----- generation -----


def example_tree() -> dict[str, Any]:
    tree: dict[str, Any] = yaml.safe_load(DEFAULT_INVENTORY.read_text())
    return tree


def example_secrets() -> dict[str, bytes]:
    folder = DEFAULT_INVENTORY.parent / "secrets"
    return {f"secrets/{path.name}": path.read_bytes() for path in folder.iterdir()
            if path.name.startswith("dc")}


def generate(seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    base, secrets = example_tree(), example_secrets()
    families: list[tuple[Callable[..., Case], int]] = [
        (structured_case, 55), (raw_case, 30), (secret_case, 10), (special_case, 5),
    ]
    makers = [maker for maker, weight in families for _ in range(weight)]
    for index in range(count):
        maker = rng.choice(makers)
        yield maker(rng, index, base, secrets)


def structured_case(rng: random.Random, index: int, base: dict[str, Any],
                    secrets: dict[str, bytes]) -> Case:
    """Half the time only edgy but valid changes (so the renderer gets work), else hostile."""
    tree = json.loads(json.dumps(base))
    hostile = rng.random() < 0.5
    if not hostile and rng.random() < 0.5:
        tree["sites"]["dc1"]["admin_password"] = "env:ADMIN_PW"
    for _ in range(rng.randint(1, 4)):
        rng.choice(MUTATIONS if hostile else EDGY)(rng, tree)
    text = dump(rng, tree)
    if hostile and rng.random() < 0.3:
        text = mutate_text(rng, text)
    case = Case(index, "structured" if hostile else "edgy",
                inventory=text.encode("utf-8", "surrogatepass"), files=dict(secrets),
                env={**ENV, "ADMIN_PW": rng.choice(PASSWORDS)})
    protect(case)
    return case


def dump(rng: random.Random, tree: Any) -> str:
    try:
        return yaml.safe_dump(tree, allow_unicode=rng.random() < 0.5, sort_keys=False,
                              default_flow_style=rng.choice([None, False, True]))
    except (yaml.YAMLError, UnicodeEncodeError):  # e.g. a lone surrogate: keep it escaped
        return yaml.safe_dump(tree, allow_unicode=False, sort_keys=False)


def protect(case: Case) -> None:
    """Secret files hold clean values, mode 0600 (the secret family varies them)."""
    for name in case.files:
        case.modes[name] = 0o600


def random_path(rng: random.Random, tree: Any) -> tuple[Any, Any] | None:
    """A random (container, key) inside the tree."""
    node, slot = tree, None
    for _ in range(rng.randint(1, 6)):
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
        elif isinstance(node, list) and node:
            key = rng.randrange(len(node))
        else:
            break
        slot = (node, key)
        node = node[key]
    return slot


def nasty_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(NASTY_TEXT) + rng.choice(["", "x", rng.choice(NASTY_TEXT)])
    if roll < 0.75:
        return rng.choice(NASTY_SCALARS)
    if roll < 0.9:
        return "".join(rng.choice(NASTY_TEXT[:30]) for _ in range(rng.randint(1, 8)))
    return {rng.choice(ODD_KEYS): rng.choice(NASTY_SCALARS)}


def replace_value(rng: random.Random, tree: Any) -> None:
    slot = random_path(rng, tree)
    if slot is not None:
        slot[0][slot[1]] = nasty_value(rng)


def delete_key(rng: random.Random, tree: Any) -> None:
    slot = random_path(rng, tree)
    if slot is not None:
        del slot[0][slot[1]]


def add_odd_key(rng: random.Random, tree: Any) -> None:
    slot = random_path(rng, tree)
    target = slot[0] if slot is not None else tree
    if isinstance(target, dict):
        target[rng.choice(ODD_KEYS)] = nasty_value(rng)


def set_site_field(rng: random.Random, tree: Any) -> None:
    site = rng.choice(list(tree["sites"].values())) if isinstance(tree.get("sites"), dict) \
        and tree["sites"] and all(isinstance(s, dict) for s in tree["sites"].values()) else None
    if site is None:
        return
    field_name, values = rng.choice(FIELD_VALUES)
    site[field_name] = rng.choice(values) if rng.random() < 0.8 else nasty_value(rng)


def add_extra_answer(rng: random.Random, tree: Any) -> None:
    sites = tree.get("sites")
    if not isinstance(sites, dict) or not sites:
        return
    site = sites[rng.choice(list(sites))]
    if not isinstance(site, dict):
        return
    kind = rng.choice(["str", "bool", "int", "none", "multi-str", "float", None])
    value: Any = {"str": rng.choice(NASTY_TEXT), "bool": rng.choice([True, False, "no"]),
                  "int": rng.choice([1, 10**30, True, "1"]),
                  "none": rng.choice([None, "x"]),
                  "multi-str": [rng.choice(NASTY_TEXT) for _ in range(rng.randint(0, 3))],
                  "float": 1.5, None: None}[kind]
    answers = site.setdefault("extra_answers", {})
    if isinstance(answers, dict):
        answers[rng.choice(ANSWER_KEYS)] = {"type": kind, "value": value}


def duplicate_site(rng: random.Random, tree: Any) -> None:
    sites = tree.get("sites")
    if isinstance(sites, dict) and sites:
        name = rng.choice(list(sites))
        sites[rng.choice(["dc3", str(name).upper(), f"dc-{rng.randint(0, 9)}"])] = \
            json.loads(json.dumps(sites[name]))


MUTATIONS: list[Callable[[random.Random, Any], None]] = [
    replace_value, replace_value, delete_key, add_odd_key, set_site_field, set_site_field,
    add_extra_answer, duplicate_site,
]
FIELD_VALUES: list[tuple[str, list[Any]]] = [
    ("fqdn", ["engine.example.com", "engine", "-a.example.com", "a..b", "e\n.example.com",
              "x" * 64 + ".example.com", "engine.example.com."]),
    ("vcpus", [0, 1, 512, 513, "4", 4.0, True, 10**30]),
    ("memory_mib", [1023, 1024, 2**62, "16384"]),
    ("timezone", ["UTC", "Europe/Paris", "../../etc/passwd", "Nowhere/City", "UTC\n"]),
    ("ntp_servers", [["pool.ntp.org"], ["pool.ntp.org iburst"], ["192.0.2.1"], ["a\nb"], "x"]),
    ("ssh_keys", [["ssh-ed25519 AAAA"], ["x"], []]),
    ("root_ssh", ["key", "password", "maybe", True]),
    ("engine", [{"organization": ""}, {"organization": "a\tb"}, {"organization": "O" * 65},
                {"admin_user": "root@internal"}, {"configure_grafana": True,
                                                   "configure_dwh": False},
                {"firewall_manager": None}, {"organization": "Ünïcödé ltd"}]),
    ("network", [{"mode": "static"}, {"mode": "dhcp", "ipv4": {"address": "192.0.2.1/24"}},
                 {"mode": "static", "ipv4": {"address": "192.0.2.1/24",
                                             "gateway": "198.51.100.1"}},
                 {"dns_servers": ["2001:db8::1"]}, {"interface": "eth0 up"},
                 {"mac": "00:16:3E:00:00:01"}, {"mac": "zz"}]),
    ("hosts_entries", [[{"ip": "192.0.2.1", "names": ["a\nb"]}], [{"ip": "x", "names": []}],
                       [{"ip": "192.0.2.1", "names": ["ok"]}]]),
    ("instance_id", ["i-1", "a b", "", "x" * 200]),
    ("root_password", ["env:ROOT_PW", "env:NOPE", "prompt", "hunter2", "file:", "file:~/x",
                       "file:../x", "file:/etc/hostname", "file:secrets/dc1-root-password"]),
]


# Passwords engine-setup can take (and two it cannot: a trailing blank, a line break).
PASSWORDS = ["p%ss", "50% ${x} #;=:", "'\"\\", "é中😀", " lead", "tab\tin", "x" * 500,
             "[environment:enforce]", "a\u2028b", "trailing ", "two\nlines"]
EDGY_ANSWERS: list[dict[str, Any]] = [
    {"type": "str", "value": "p%ss ${x} #;"}, {"type": "str", "value": " lead\ttab"},
    {"type": "multi-str", "value": [" first", "", "x%y", "[s]"]}, {"type": "multi-str",
                                                                  "value": []},
    {"type": "int", "value": -(10**30)}, {"type": "none"}, {"type": "bool", "value": False},
]


def edgy_site(rng: random.Random, tree: Any) -> dict[str, Any]:
    site: dict[str, Any] = tree["sites"][rng.choice(list(tree["sites"]))]
    return site


def edgy_organization(rng: random.Random, tree: Any) -> None:
    edgy_site(rng, tree).setdefault("engine", {})["organization"] = rng.choice(
        ["Ünïcödé Ltd", "O" * 64, "50% #1; ${x}", "a/b\\c", "中文组织", "x"])


def edgy_answers(rng: random.Random, tree: Any) -> None:
    key = rng.choice(["OVESETUP_X/y", "QUESTION/1/OVESETUP_Y", "QUESTION/12/Z", "OVESETUP_A/b"])
    edgy_site(rng, tree).setdefault("extra_answers", {})[key] = rng.choice(EDGY_ANSWERS)


def edgy_network(rng: random.Random, tree: Any) -> None:
    edgy_site(rng, tree)["network"] = rng.choice([
        {"mode": "static", "ipv6": {"address": "2001:db8:9::10/64", "gateway": "2001:db8:9::1"},
         "dns_servers": ["2001:db8:9::53"], "search_domains": ["example.org"]},
        {"mode": "dhcp", "mac": "00:16:3E:AA:BB:CC", "interface": "enp1s0.100",
         "dns_servers": ["192.0.2.53"]},
        {"mode": "static", "ipv4": {"address": "203.0.113.10/31"}},
    ])


def edgy_misc(rng: random.Random, tree: Any) -> None:
    site = edgy_site(rng, tree)
    name, value = rng.choice([
        ("root_ssh", "password"), ("ntp_servers", ["192.0.2.123", "2001:db8::123", "ntp"]),
        ("hosts_entries", [{"ip": "2001:db8::5", "names": ["h" * 63, "a.b"]}]),
        ("instance_id", "i-" + "9" * 100), ("timezone", "America/Argentina/Buenos_Aires"),
        ("vcpus", 512), ("memory_mib", 2**40),
    ])
    site[name] = value


EDGY: list[Callable[[random.Random, Any], None]] = [
    edgy_organization, edgy_answers, edgy_network, edgy_misc,
]


def mutate_text(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    where = rng.randrange(len(lines))
    action = rng.randrange(4)
    if action == 0:
        lines.insert(where, lines[where])  # a duplicate key, usually
    elif action == 1:
        lines[where] = "\t" + lines[where]
    elif action == 2:
        return text[: rng.randrange(len(text) + 1)]
    else:
        cut = rng.randrange(len(lines[where]) + 1)
        lines[where] = lines[where][:cut] + rng.choice(NASTY_TEXT) + lines[where][cut:]
    return "".join(lines)


def raw_case(rng: random.Random, index: int, _base: Any, secrets: dict[str, bytes]) -> Case:
    maker = rng.choice(RAW_MAKERS)
    data = maker(rng)
    return Case(index, f"raw:{maker.__name__}", inventory=data, files=dict(secrets))


def alias_bomb(rng: random.Random) -> bytes:
    width, depth = rng.randint(2, 12), rng.randint(3, 12)
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    lines.append(f"sites: {{dc1: {{fqdn: engine.example.com, ntp_servers: *a{depth - 1}}}}}")
    return ("\n".join(lines) + "\n").encode()


def deep_nesting(rng: random.Random) -> bytes:
    depth = rng.choice([10, 63, 64, 65, 200, 1000, 100_000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}"), ("- ", "")])
    if opener == "- ":
        return "".join("  " * i + "-\n" for i in range(min(depth, 3000))).encode()
    return ("sites: " + opener * depth + closer * rng.choice([0, depth]) + "\n").encode()


def huge_int(rng: random.Random) -> bytes:
    digits = rng.choice([19, 100, 101, 4300, 4301, 5000, 50_000])
    number = rng.choice(["", "-", "+"]) + rng.choice(["", "0x", "0b", "0"]) + "1" * digits
    return (f"sites:\n  dc1:\n    fqdn: engine.example.com\n    vcpus: {number}\n"
            "    root_password: env:ROOT_PW\n    admin_password: env:ADMIN_PW\n").encode()


def control_chars(rng: random.Random) -> bytes:
    char = rng.choice(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff", "\r"])
    return f"sites:\n  dc1:\n    fqdn: engine.example.com{char}\n".encode()


def tags(rng: random.Random) -> bytes:
    tag = rng.choice(["!!python/object/apply:os.system ['id']", "!!binary aGk=", "!!set {a}",
                      "!!omap [a: 1]", "!custom x", "!!int '12'", "!!str 12", "!!float x",
                      "!!bool maybe", "!!null x", "!!timestamp 2001-01-01", "!<tag:x> y"])
    return f"sites:\n  dc1:\n    fqdn: engine.example.com\n    vcpus: {tag}\n".encode()


def junk_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))


def odd_structure(rng: random.Random) -> bytes:
    return rng.choice([
        b"", b"---\n", b"[]\n", b"sites: []\n", b"sites:\n", b"sites: {dc1: }\n",
        b"? [a]\n: b\n", b"sites: &s {dc1: *s}\n", b"a: *nope\n", b"a: 1\n---\nb: 2\n",
        b"sites:\n  dc1: {<<: 3}\n", b"sites:\n  dc1: {<<: [1, 2]}\n", b"\xef\xbb\xbfsites: {}\n",
        b"sites: {dc1: {fqdn: a.b, root_password: env:X, admin_password: env:Y}}\n" * 3,
        ("sites:\n" + "".join(f"  s{i}: {{fqdn: e.s{i}.example.com, root_password: env:ROOT_PW,"
                              f" admin_password: env:ADMIN_PW}}\n" for i in range(30))).encode(),
        b"sites:\n  dc1:\n    fqdn: " + b"a" * 200_000 + b".example.com\n",
        b"defaults: &d {vcpus: 2}\nsites:\n  dc1:\n    <<: *d\n    fqdn: engine.example.com\n"
        b"    root_password: env:ROOT_PW\n    admin_password: env:ADMIN_PW\n",
    ])


RAW_MAKERS: list[Callable[[random.Random], bytes]] = [
    alias_bomb, deep_nesting, huge_int, control_chars, tags, junk_bytes, odd_structure,
]


def secret_case(rng: random.Random, index: int, base: dict[str, Any],
                secrets: dict[str, bytes]) -> Case:
    """The example, with dc1's root password read from something odd."""
    tree = json.loads(json.dumps(base))
    case = Case(index, "secret", files=dict(secrets))
    protect(case)
    kind = rng.choice(SECRET_KINDS)
    tree["sites"]["dc1"]["root_password"] = kind(rng, case)
    case.family = f"secret:{kind.__name__}"
    case.inventory = yaml.safe_dump(tree, sort_keys=False).encode()
    return case


def secret_fifo(_rng: random.Random, case: Case) -> str:
    case.fifos.append("secrets/fifo")
    return "file:secrets/fifo"


def secret_link_out(rng: random.Random, case: Case) -> str:
    case.links["secrets/link"] = rng.choice(["/etc/hostname", "/dev/zero", "../../outside/pw",
                                             "/proc/self/environ", "loop", "/nonexistent"])
    if case.links["secrets/link"] == "loop":
        case.links["secrets/link"] = "link2"
        case.links["secrets/link2"] = "link"
    case.allow_outside = rng.random() < 0.3
    return "file:secrets/link"


def secret_content(rng: random.Random, case: Case) -> str:
    content = rng.choice([b"", b"\n", b"a\nb\n", b"trailing \n", b"\xff\xfe", b"x" * 5000,
                          b"x" * 4096, "é😀\n".encode(), b"p%ss ${x} #;\n", b"\x00\n"])
    case.files["secrets/odd"] = content
    case.modes["secrets/odd"] = rng.choice([0o600, 0o644, 0o000, 0o640])
    return "file:secrets/odd"


def secret_path(rng: random.Random, case: Case) -> str:
    case.allow_outside = rng.random() < 0.5
    return rng.choice(["file:/dev/zero", "file:/etc/hostname", "file:../outside/pw",
                       "file:secrets", "file:.", "file:/", "file:secrets/../secrets/dc1-root-"
                       "password", "file:" + "a/" * 2000 + "x", "file:\x00", "env:NOPE"])


SECRET_KINDS: list[Callable[[random.Random, Case], str]] = [
    secret_fifo, secret_link_out, secret_content, secret_path,
]


def special_case(rng: random.Random, index: int, _base: Any, secrets: dict[str, bytes]) -> Case:
    special = rng.choice(["fifo", "directory", "symlink-loop", "dev-zero", "missing", "empty"])
    return Case(index, f"special:{special}", special=special, files=dict(secrets))


# ----- running one case in a child -----


def materialize(case: Case, root: Path) -> tuple[Path, list[Path]]:
    """Write the case under root/inv/ (plus root/outside/pw); the inventory path, allowed dirs."""
    inv = root / "inv"
    (inv / "secrets").mkdir(parents=True)
    (root / "outside").mkdir()
    (root / "outside" / "pw").write_text("outside-pw\n")
    for name, content in case.files.items():
        (inv / name).write_bytes(content)
        (inv / name).chmod(case.modes.get(name, 0o600))
    for name in case.fifos:
        os.mkfifo(inv / name)
    for name, target in case.links.items():
        (inv / name).symlink_to(target)
    path = inv / "inventory.yaml"
    make_special(case, path)
    allowed = [root / "outside", Path("/etc"), Path("/dev")] if case.allow_outside else []
    return path, allowed


def make_special(case: Case, path: Path) -> None:
    if case.special is None:
        path.write_bytes(case.inventory or b"")
    elif case.special == "fifo":
        os.mkfifo(path)
    elif case.special == "directory":
        path.mkdir()
    elif case.special == "symlink-loop":
        path.symlink_to(path)
    elif case.special == "dev-zero":
        path.symlink_to("/dev/zero")
    elif case.special == "empty":
        path.write_bytes(b"")


def evaluate(case: Case, root: Path) -> Outcome:
    """In the child: load, and when accepted render every site; classify what happened."""
    path, allowed = materialize(case, root)
    try:
        inventory = load_inventory(path, allow_secrets_from=allowed)
    except InputError as exc:
        return clean_or_not(exc, "load")
    for site in inventory.sites.values():
        try:
            secrets = inventory.resolve_secrets(site, env=case.env, prompt=None)
        except InputError as exc:
            return clean_or_not(exc, "secrets")
        try:
            seed = master_seed(site, secrets, epoch=0)
        except InputError as exc:
            field_name = exc.message.split(": ")[1] if exc.message.count(": ") >= 2 else ""
            if field_name in SECRET_FIELDS:  # a secret's value, known only now
                return clean_or_not(exc, "render")
            return Outcome("internal error", f"rule gap: seed refused what check accepted: "
                           f"{exc.message}")
        check = check_answers(seed.rendered.answers).environment
        if check.get("OVESETUP_CONFIG/adminPassword") != secrets.admin_password:
            return Outcome("internal error", "answer file does not read back the password")
    return Outcome("accepted")


def clean_or_not(exc: InputError, stage: str) -> Outcome:
    lines = error_lines(exc)
    if any(not line.isprintable() for line in lines):
        return Outcome("internal error", f"{stage}: unprintable error line: {lines!r:.300}")
    return Outcome("clean error", f"{stage}: {lines[min(1, len(lines) - 1)][:200]}")


def child(case: Case, root: Path, out: int) -> None:
    logging.disable(logging.WARNING)  # warnings (a secret's mode) are expected, not counted
    try:
        outcome = evaluate(case, root)
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        outcome = Outcome("internal error", f"{type(exc).__name__}: {text[:300]}")
    os.write(out, json.dumps([outcome.kind, outcome.detail]).encode())
    os.close(out)


@dataclass
class Running:
    case: Case
    pid: int
    pipe: int
    root: Path
    started: float
    chunks: list[bytes] = field(default_factory=list)


def start(case: Case) -> Running:
    root = Path(tempfile.mkdtemp(prefix=f"he-fuzz-{case.index}-"))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into the campaign
        os.close(read_end)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            child(case, root, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    return Running(case, pid, read_end, root, time.monotonic())


def finish(run: Running, timed_out: bool) -> Outcome:
    seconds = time.monotonic() - run.started
    if timed_out:
        os.kill(run.pid, signal.SIGKILL)
    _, status = os.waitpid(run.pid, 0)
    os.close(run.pipe)
    shutil.rmtree(run.root, ignore_errors=True)
    if timed_out:
        return Outcome("hang", f"no result after {seconds:.1f} s", seconds)
    payload = b"".join(run.chunks)
    if os.WIFSIGNALED(status) or not payload:
        return Outcome("crash", f"child status {status} (signal "
                       f"{os.WTERMSIG(status) if os.WIFSIGNALED(status) else '-'})", seconds)
    kind, detail = json.loads(payload)
    return Outcome(kind, detail, seconds)


def run_campaign(cases: Iterator[Case], *, jobs: int, timeout: float,
                 report: Callable[[Case, Outcome], None]) -> Counter[str]:
    """Run every case in its own child, `jobs` at a time; count the outcomes."""
    counts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
    running: dict[int, Running] = {}
    pending = iter(cases)
    exhausted = False
    while running or not exhausted:
        while not exhausted and len(running) < jobs:
            case = next(pending, None)
            if case is None:
                exhausted = True
            else:
                run = start(case)
                running[run.pipe] = run
        for run, timed_out in poll(running, timeout):
            del running[run.pipe]
            outcome = finish(run, timed_out=timed_out)
            counts[outcome.kind] += 1
            report(run.case, outcome)
    return counts


def poll(running: dict[int, Running], timeout: float) -> list[tuple[Running, bool]]:
    """(run, timed out) for the children whose pipe closed or whose deadline passed."""
    if not running:
        return []
    ready, _, _ = select.select(list(running), [], [], 0.05)
    finished = []
    for pipe in ready:
        chunk = os.read(pipe, 65536)
        if chunk:
            running[pipe].chunks.append(chunk)
        else:
            finished.append((running[pipe], False))
    now = time.monotonic()
    finished += [(run, True) for pipe, run in running.items()
                 if pipe not in ready and now - run.started > timeout]
    return finished


# ----- the script -----


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds before a case counts as a hang")
    parser.add_argument("--show", type=int, default=5, help="examples to print per outcome")
    args = parser.parse_args(argv)
    examples: dict[str, list[str]] = {kind: [] for kind in OUTCOMES}
    families: Counter[tuple[str, str]] = Counter()
    slowest: list[tuple[float, str]] = []

    def report(case: Case, outcome: Outcome) -> None:
        families[(case.family.split(":")[0], outcome.kind)] += 1
        slowest.append((outcome.seconds, f"case {case.index} ({case.family})"))
        if len(examples[outcome.kind]) < args.show:
            examples[outcome.kind].append(f"case {case.index} ({case.family}): "
                                          f"{outcome.detail}")

    started = time.monotonic()
    counts = run_campaign(generate(args.seed, args.cases), jobs=args.jobs,
                          timeout=args.timeout, report=report)
    print_summary(args, counts, families, examples, slowest, time.monotonic() - started)
    bad = counts["hang"] + counts["crash"] + counts["internal error"]
    return 1 if bad else 0


def print_summary(args: argparse.Namespace, counts: Counter[str],
                  families: Counter[tuple[str, str]], examples: dict[str, list[str]],
                  slowest: list[tuple[float, str]], seconds: float) -> None:
    print(f"cases: {sum(counts.values())} (seed {args.seed}, {args.jobs} jobs, "
          f"{args.timeout:.0f} s per case) in {seconds:.1f} s")
    for kind in OUTCOMES:
        print(f"  {kind:<15} {counts[kind]:6d}")
    print("by family: " + ", ".join(f"{family}/{kind}: {n}"
                                    for (family, kind), n in sorted(families.items())))
    slowest.sort(reverse=True)
    print("slowest: " + ", ".join(f"{name} {secs:.2f} s" for secs, name in slowest[:3]))
    for kind in OUTCOMES:
        for line in examples[kind]:
            print(f"  [{kind}] {line}")


if __name__ == "__main__":
    run_bench(main)
