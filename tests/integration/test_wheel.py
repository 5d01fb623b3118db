"""The wheel, installed outside the checkout, runs he-build with nothing but the files it ships.

How, with no network: the wheel is built by `python -m build --wheel --no-isolation` (the dev
venv's setuptools and build, both in the dev extra) from a copy of the checkout's sources, and
pip installs it with `--no-index` into a venv made without --system-site-packages. That venv's
only other path is a directory of links to the distributions installed in the dev environment,
minus he-builder itself (its editable install) and minus Debian's libvirt and libguestfs
bindings: pip finds the wheel's dependencies there instead of downloading them. The commands
run from a directory outside the checkout with no PYTHONPATH, so nothing can come from the
checkout; the tests check that the package and every data file resolve inside the venv. None
of these commands needs the bindings (seeds and inventory run on controllers without them, and
rendering a kickstart boots nothing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.disk import kickstart_install
from builder.disk.registry import load_recipe
from builder.errors import ExitCode

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Top-level entries of the checkout a build must not read: build/ may hold stale copies, and the
# editable install's he_builder.egg-info lists every file it saw (setuptools would ship those).
NOT_SOURCES = {".git", ".venv", "build", "dist", "out", "cache", ".mypy_cache", ".ruff_cache",
               ".pytest_cache", ".hypothesis"}
BINDINGS = ("python3-libvirt", "python3-guestfs")
EPOCH = "1700000000"
# Each top-level tree, and what of it the wheel ships under builder/data/.
SHIPPED_TREES = {
    "kickstarts": ("**/*.j2",),
    "ovf": ("README.md", "xsd/*.xsd"),
    "pipelines": ("*.yaml", "recipes/*.yaml"),
    "examples": ("inventory.yaml", "secrets/*"),
}
PROBE = """
import importlib.util, json, sys
import builder
from builder import resources
print(json.dumps({
    "builder": builder.__file__,
    "resources": [str(p) for p in (resources.KICKSTART_DIR, resources.RECIPE_DIR,
                  resources.EXAMPLE_INVENTORY, resources.EXAMPLE_SECRETS,
                  resources.OVF_SCHEMA_DIR, resources.SEED_RUNNER_TEMPLATE,
                  resources.appliance_file("appliance.spec.j2"))],
    "sys_path": sys.path,
    "bindings": [importlib.util.find_spec(m) is not None for m in ("libvirt", "guestfs")],
}))
"""


@dataclass(frozen=True)
class Installed:
    """he-builder installed from its wheel into `venv`; commands run in `work`."""

    venv: Path
    site: Path
    work: Path
    env: dict[str, str]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert "Traceback" not in done.stderr
        assert done.returncode == ExitCode.OK, done.stderr
        return done

    def he_build(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.venv / "bin" / "he-build"), *argv])


def checked(argv: list[str]) -> str:
    """Run a setup step (build, venv, pip); its stdout, or a failure showing its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{argv[:4]}: {done.stderr}"
    return done.stdout


def _not_sources(folder: str, names: list[str]) -> set[str]:
    if Path(folder) == REPO:
        return {name for name in names if name in NOT_SOURCES or name.endswith(".egg-info")}
    return {name for name in names if name == "__pycache__"}


def build_wheel(root: Path) -> Path:
    source = root / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_not_sources)
    checked([sys.executable, "-m", "build", "--wheel", "--no-isolation",
             "--outdir", str(root / "dist"), str(source)])
    (wheel,) = (root / "dist").glob("he_builder-*.whl")
    return wheel


def binding_files() -> list[Path]:
    """The top-level files Debian's binding packages install (libvirt.py, libvirtmod*.so...)."""
    listed = checked(["dpkg-query", "-L", *BINDINGS]).split()
    return [Path(p) for p in listed if Path(p).parent.name == "dist-packages"]


def is_he_builder(name: str) -> bool:
    return name == "builder" or name.startswith(("he_builder", "__editable__"))


def link_dependencies(folder: Path, leave_out: set[str]) -> None:
    """Links to every distribution the dev interpreter sees (its own site-packages first, then
    the system's), without he-builder, .pth files and the names in `leave_out`."""
    folder.mkdir()
    seen: set[str] = set()  # projects already linked: the first site directory's version wins
    for site_dir in map(Path, site.getsitepackages()):
        entries = sorted(site_dir.iterdir()) if site_dir.is_dir() else []
        here = {project for entry in entries if (project := metadata_project(entry.name))}
        for entry in entries:
            name = entry.name
            skip = (is_he_builder(name) or name.endswith(".pth") or name == "__pycache__"
                    or name in leave_out or (folder / name).is_symlink()
                    or metadata_project(name) in seen)
            if not skip:
                (folder / name).symlink_to(entry)
        seen |= here


def metadata_project(name: str) -> str | None:
    """The normalized project of a `.dist-info`/`.egg-info` entry (e.g. Debian's
    certifi-2022.9.24.egg-info beside the venv's certifi-2026...dist-info), else None: two
    versions of one project would make pip see the older as installed."""
    if not name.endswith((".dist-info", ".egg-info")):
        return None
    return re.sub(r"[-_.]+", "-", name.rsplit(".", 1)[0].split("-", 1)[0]).lower()


def make_venv(venv: Path, deps: Path) -> Path:
    """A venv without system site packages whose one extra path is `deps`; its site-packages."""
    checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    purelib = checked([str(venv / "bin" / "python"), "-c",
                       "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    (Path(purelib) / "he-builder-deps.pth").write_text(f"{deps}\n")
    return Path(purelib)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    assert not root.is_relative_to(REPO)
    wheel = build_wheel(root)
    link_dependencies(root / "deps", {path.name for path in binding_files()})
    venv = root / "venv"
    site_dir = make_venv(venv, root / "deps")
    checked([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
             "install", "--no-index", "--no-cache-dir", "--quiet", str(wheel)])
    work = root / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["SOURCE_DATE_EPOCH"] = EPOCH
    return Installed(venv=venv, site=site_dir, work=work, env=env)


@pytest.fixture(scope="module")
def checkout_seeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bundled example's seeds rendered by the checkout (in this process)."""
    out = tmp_path_factory.mktemp("checkout") / "seeds"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        assert main(["seed", "--all", "--out", str(out)]) == ExitCode.OK
    yield out


def site_files(seeds: Path) -> dict[str, bytes]:
    return {f"{site_dir}/{path.name}": path.read_bytes()
            for site_dir in ("dc1", "dc2") for path in sorted((seeds / site_dir).iterdir())}


def files_under(root: Path, patterns: tuple[str, ...]) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for pattern in patterns for path in root.glob(pattern) if path.is_file()}


def test_the_package_and_every_data_file_come_from_the_venv(installed: Installed) -> None:
    probe = json.loads(installed.run([str(installed.venv / "bin" / "python"), "-c",
                                      PROBE]).stdout)
    package = installed.site / "builder"
    assert Path(probe["builder"]) == package / "__init__.py"
    for resource in map(Path, probe["resources"]):
        assert resource.is_relative_to(package) and resource.exists(), resource
    assert not any(Path(entry).resolve().is_relative_to(REPO)
                   for entry in probe["sys_path"] if entry)
    assert probe["bindings"] == [False, False]


def test_the_wheel_ships_every_reviewed_file_unchanged(installed: Installed) -> None:
    data = installed.site / "builder" / "data"
    for tree, patterns in SHIPPED_TREES.items():
        assert not (data / tree).is_symlink()
        expected = files_under(REPO / tree, patterns)
        assert expected and files_under(data / tree, patterns) == expected, tree
    for folder in ("data/appliance", "seed/data"):
        expected = files_under(REPO / "builder" / folder, ("*",))
        assert files_under(installed.site / "builder" / folder, ("*",)) == expected
    engine_setup = data / "appliance" / "engine-setup"
    assert engine_setup.stat().st_mode & stat.S_IXUSR


def test_inventory_check_reads_the_bundled_example(installed: Installed) -> None:
    lines = installed.he_build("inventory", "check").stdout.splitlines()
    example = installed.site / "builder" / "data" / "examples" / "inventory.yaml"
    assert lines[-1] == f"{example}: 2 sites, no problems"


def test_seeds_of_the_bundled_example_match_the_checkouts(installed: Installed,
                                                          checkout_seeds: Path) -> None:
    """Read in place, the example's demo secrets work; pip installed them 0644, so seed says
    so, naming the installed files."""
    out = installed.work / "seeds"
    done = installed.he_build("seed", "--all", "--out", str(out))
    assert site_files(out) == site_files(checkout_seeds)
    secrets = installed.site / "builder" / "data" / "examples" / "secrets"
    warned = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 4
    assert all(f" {secrets}/dc" in line and "(mode 0644)" in line for line in warned)


def test_a_copy_of_the_example_seeds_without_a_warning(installed: Installed,
                                                       checkout_seeds: Path) -> None:
    """What a user does to start an inventory of their own (docs/inventory.md)."""
    check = json.loads(installed.he_build("inventory", "check", "--json").stdout)
    mine = installed.work / "my-sites"
    shutil.copytree(Path(check["inventory"]).parent, mine)
    for secret in (mine / "secrets").glob("dc*"):
        secret.chmod(0o600)
    out = installed.work / "my-seeds"
    done = installed.he_build("seed", "--all", "--inventory", str(mine / "inventory.yaml"),
                              "--out", str(out))
    assert "WARNING" not in done.stderr
    assert site_files(out) == site_files(checkout_seeds)


def test_the_bundled_recipes_are_listed_from_the_wheel(installed: Installed) -> None:
    listed = json.loads(installed.he_build("appliance", "--list-recipes", "--json").stdout)
    names = [recipe["name"] for recipe in listed["recipes"]]
    assert names == sorted(path.stem for path in (REPO / "pipelines" / "recipes").glob("*.yaml"))
    folder = installed.site / "builder" / "data" / "pipelines" / "recipes"
    assert all(Path(recipe["path"]).parent == folder for recipe in listed["recipes"])


def test_a_kickstart_renders_from_the_wheel_as_from_the_checkout(installed: Installed) -> None:
    target = installed.work / "ks.cfg"
    done = installed.he_build("appliance", "--recipe", "kickstart-centos9",
                              "--render-kickstart", str(target))
    assert done.stdout.strip() == f"{target}: the kickstart of recipe kickstart-centos9"
    expected = kickstart_install.from_recipe(load_recipe("kickstart-centos9"), {}).kickstart
    assert target.read_text() == expected
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
