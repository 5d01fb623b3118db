"""The seed's YAML documents written directly (builder.seed.block_yaml) are libyaml's text byte for
byte, or left to libyaml: on the documents of real sites and on a fixed-seed sample of the fuzz
campaign (bench/fuzz_yaml.py runs 100,000 cases)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import Outcome
from bench.fuzz_yaml import Case, generate, run_campaign
from bench.seeds import EPOCH, generated_site, secrets_of
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.seed import documents
from builder.seed.block_yaml import WIDTH, dump_block_yaml
from builder.seed.documents import libyaml_dump
from builder.seed.master import master_seed
from builder.seed.passwords import HashedSecrets

SAMPLE = 4000
SEED = 20261205


def test_fuzz_sample_writes_libyamls_text_or_leaves_it_to_libyaml() -> None:
    mismatches: list[str] = []

    def report(case: Case, outcome: Outcome) -> None:
        if outcome.kind == "mismatch":
            mismatches.append(f"case {case.index}: {outcome.detail}")

    counts = run_campaign(generate(SEED, SAMPLE), report=report)
    assert mismatches == []
    # Both writers at work, or the sample proves nothing.
    assert counts["direct"] > SAMPLE // 8 and counts["libyaml"] > SAMPLE // 8


def test_the_seeds_own_documents_are_written_directly_as_libyaml_writes_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, str | None]] = []

    def recorded(data: Any) -> str | None:
        seen.append((data, dump_block_yaml(data)))
        return seen[-1][1]

    monkeypatch.setattr(documents, "dump_block_yaml", recorded)
    example = load_inventory(DEFAULT_INVENTORY)
    for site in [generated_site(index) for index in range(40)] + list(example.sites.values()):
        secrets = secrets_of(site.name)
        hashed = HashedSecrets(secrets.root_password, secrets.admin_password,
                               "$6$" + "s" * 16 + "$" + "h" * 86)
        master_seed(site, hashed, epoch=EPOCH)
    direct = [(data, text) for data, text in seen if text is not None]
    assert [text for data, text in direct] == [libyaml_dump(data) for data, text in direct]
    # Every site's own documents (its keys, its files, static network-config); only the part
    # all sites share, made once, may be left to libyaml.
    assert len(direct) >= 2 * (40 + len(example.sites)) and len(seen) - len(direct) <= 2


@pytest.mark.parametrize(("data", "text"), [
    ({"permissions": "0644"}, "permissions: '0644'\n"),
    ({"mac": "52:54:00:12:34:56"}, "mac: '52:54:00:12:34:56'\n"),
    ({"ssh_pwauth": "no", "enabled": False, "n": 3, "x": None},
     "ssh_pwauth: 'no'\nenabled: false\nn: 3\nx: null\n"),
    ({"address": "fd00::15/64", "empty": ""}, "address: fd00::15/64\nempty: ''\n"),
    ({"files": [{"path": "/etc/hosts", "content": "a b\n\nc\n"}], "m": {}, "l": []},
     "files:\n- path: /etc/hosts\n  content: |\n    a b\n\n    c\nm: {}\nl: []\n"),
    ({"c": "one line"}, "c: one line\n"),
    ({"c": "two lines\nno final line break"}, "c: |-\n  two lines\n  no final line break\n"),
    ({"c": "kept blank lines\n\n"}, None),
    ({"c": "  leading blank\n"}, None),
    ({"c": "trailing blank \nx\n"}, None),
    ({"k" * 65: 1}, None),
    ({"key": "a: b"}, None),
    ({"key": "-a"}, None),
    ([["nested"]], None),
])
def test_chosen_documents(data: Any, text: str | None) -> None:
    assert dump_block_yaml(data) == text
    if text is not None:
        assert text == libyaml_dump(data)


def test_the_same_list_twice_is_left_to_libyaml_which_writes_an_alias() -> None:
    shared = ["a"]
    assert dump_block_yaml({"x": shared, "y": shared}) is None
    assert "&id001" in libyaml_dump({"x": shared, "y": shared})


def test_a_line_with_blanks_past_the_width_is_left_to_libyaml_which_breaks_it() -> None:
    head = "k: "
    fits = {"k": "w " * ((WIDTH - len(head)) // 2 - 1) + "end"}
    too_long = {"k": fits["k"] + " more words"}
    assert dump_block_yaml(fits) == libyaml_dump(fits)
    assert dump_block_yaml(too_long) is None
    assert libyaml_dump(too_long).count("\n") > 1
