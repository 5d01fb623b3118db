"""The one locator of the files he-builder ships besides its code (importlib.resources).

Where each file lives (reviewed there), and the one name code uses for it:
- kickstarts/ (+ snippets/): `KICKSTART_DIR`, the appliance kickstart's templates;
- pipelines/recipes/*.yaml: `RECIPE_DIR`, `bundled_recipes()`;
- examples/inventory.yaml, examples/secrets/: `EXAMPLE_INVENTORY`, `EXAMPLE_SECRETS`;
- ovf/xsd/: `OVF_SCHEMA_DIR`, DMTF's OVF 1.1 schemas (the release gate, the tests);
- builder/data/appliance/NAME: `appliance_file(NAME)` (spec templates, answers, stand-in);
- builder/seed/data/engine-setup-runner.sh.j2: `SEED_RUNNER_TEMPLATE`.

`builder/data/kickstarts`, `ovf`, `pipelines` and `examples` are symlinks to the top-level
directories (`../../kickstarts`...). Both installs then read the same names below the
package, `importlib.resources.files("builder") / "data"`:
- an editable install (`pip install -e`, scripts/setup.sh) imports `builder` from the checkout,
  where the symlinks lead to the top-level files themselves: an edit shows at once;
- a wheel (`python -m build`, `pip install .`): setuptools follows the symlinks when it copies
  the package data (pyproject.toml's `[tool.setuptools.package-data]`), so the wheel, and an
  sdist, hold real copies under `builder/data/`.
A setuptools `package-dir` mapping (`"builder.data.kickstarts" = "kickstarts"`) was tried too
(setuptools 84): its wheel is right, but every package must then be listed by hand, and in an
editable install `builder/data/kickstarts` does not exist and `import builder.data.kickstarts`
fails (the editable finder finds a mapped package by its `__init__.py`, which a data directory
lacks): it serves the wheel only.

Every path is returned resolved (symlinks followed): from a checkout, messages and
`he-build inventory check` name the top-level file a reviewer knows; from a wheel, the file
inside site-packages. The package must be installed unpacked (pip always does); from a zip
archive these paths do not exist, and the command that needs one says which it is missing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_dir(package: str) -> Path:
    """Where a package's files are on disk (importing it)."""
    found = resources.files(package)
    return found if isinstance(found, Path) else Path(str(found))


DATA_DIR = package_dir("builder") / "data"


def data_path(*parts: str) -> Path:
    """A file or directory below builder/data, symlinks resolved."""
    return DATA_DIR.joinpath(*parts).resolve()


KICKSTART_DIR = data_path("kickstarts")
RECIPE_DIR = data_path("pipelines", "recipes")
EXAMPLE_INVENTORY = data_path("examples", "inventory.yaml")
EXAMPLE_SECRETS = data_path("examples", "secrets")
OVF_SCHEMA_DIR = data_path("ovf", "xsd")
SEED_RUNNER_TEMPLATE = (package_dir("builder") / "seed" / "data" /
                        "engine-setup-runner.sh.j2").resolve()


def appliance_file(name: str) -> Path:
    """One of the appliance's own files (builder/data/appliance: spec template, answers...)."""
    return data_path("appliance", name)


def bundled_recipes() -> dict[str, Path]:
    """The bundled recipes by name (the file name without .yaml), sorted by name."""
    return {path.stem: path for path in sorted(RECIPE_DIR.glob("*.yaml"))}
