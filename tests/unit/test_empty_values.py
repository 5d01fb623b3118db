"""An empty value where a path, a site or a recipe goes is a usage error (exit 2, one line
naming the option), never the current directory (Path("") is ".") or the option's default:
`--out "$OUT"` with OUT unset must not write seeds into the working directory, `--recipe
"$RECIPE"` must not build the default recipe. Nothing is written (he-launch's own rows are in
tests/unit/test_launch_bad_input.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli.he_build import main

ROWS = [
    (["seed", "--site", "dc1", "--out", ""], "argument --out: an empty path"),
    (["seed", "--all", "--inventory", ""], "argument --inventory: an empty path"),
    (["seed", "--site", ""], "argument --site: an empty value"),
    (["appliance", "--out", ""], "argument --out: an empty path"),
    (["appliance", "--recipe", ""], "argument --recipe: an empty value"),
    (["appliance", "--kickstart", ""], "argument --kickstart: an empty path"),
    (["appliance", "--install-tree", ""], "argument --install-tree: an empty value"),
    (["appliance", "--render-kickstart", ""], "argument --render-kickstart: an empty path"),
    (["appliance", "--sign-key", ""], "argument --sign-key: an empty value"),
    (["inventory", "check", "--inventory", ""], "argument --inventory: an empty path"),
    (["inventory", "check", "--allow-secrets-from", ""],
     "argument --allow-secrets-from: an empty path"),
    (["ova", "verify", ""], "argument OVA: an empty path"),
    (["release", "--plan", "--file", ""], "argument --file: an empty path"),
    (["release", "--publish", ""], "argument --publish: an empty path"),
]


@pytest.mark.parametrize(("argv", "message"), ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_an_empty_value_is_a_usage_error(argv: list[str], message: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"he-build: error: {message}"
    assert err[1].startswith("he-build: hint: see he-build ")
    assert list(tmp_path.iterdir()) == []
