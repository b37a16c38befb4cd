"""`include:` merges blocks and targets of other files, relative to the including file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.plan.loader import load_plan

HEAD = """\
version: 1
name: main
site: {latitude: 50, longitude: 5}
"""


def test_included_blocks_and_targets_are_merged(write_plan: Callable[..., Path]) -> None:
    write_plan(
        """\
        blocks:
          lrgb:
            - each_filter: [L, R, G, B]
              steps: [{expose: {count: 2, exposure: 60}}]
        targets:
          - name: M101
            coordinates: {ra: "14:03:12.6", dec: "+54:20:57"}
            sequence: [{use: lrgb}]
        """,
        "common/blocks.yaml",
    )
    main = write_plan(
        HEAD
        + """\
include: [common/blocks.yaml]
targets:
  - name: M31
    coordinates: {ra: 10.68, dec: 41.27}
    sequence: [{use: lrgb}]
""",
        "main.yaml",
    )
    result = load_plan(main)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.plan is not None
    assert [t.name for t in result.plan.targets] == ["M31", "M101"]
    assert "lrgb" in result.plan.blocks


def test_errors_in_included_files_name_that_file(write_plan: Callable[..., Path]) -> None:
    write_plan(
        """\
        targets:
          - name: M101
            coordinates: {ra: "14:03:12.6", dec: "+54:20:57"}
            sequence:
              - filter: Purple
        """,
        "inc.yaml",
    )
    main = write_plan(HEAD + "include: [inc.yaml]\n", "main.yaml")
    result = load_plan(main)
    assert not result.ok
    [d] = [d for d in result.diagnostics if d.severity == "error"]
    assert d.file.endswith("inc.yaml") and (d.line, d.column) == (5, 17)
    assert "unknown filter 'Purple'" in d.message


def test_include_cycles_and_missing_files_are_errors(write_plan: Callable[..., Path]) -> None:
    write_plan("include: [b.yaml]\n", "a.yaml")
    write_plan("include: [a.yaml]\n", "b.yaml")
    main = write_plan(HEAD + "include: [a.yaml, nowhere.yaml]\n", "main.yaml")
    result = load_plan(main)
    msgs = [d.format() for d in result.diagnostics]
    assert any("include cycle" in m and "a.yaml" in m and "b.yaml" in m for m in msgs), msgs
    assert any("main.yaml:4:19: error: included file 'nowhere.yaml' not found" in m
               for m in msgs), msgs


def test_a_block_defined_twice_is_an_error(write_plan: Callable[..., Path]) -> None:
    write_plan("blocks:\n  x: [{filter: L}]\n", "inc.yaml")
    main = write_plan(HEAD + "include: [inc.yaml]\nblocks:\n  x: [{filter: R}]\n", "main.yaml")
    result = load_plan(main)
    assert any("block 'x' is already defined at" in d.message for d in result.diagnostics)


def test_an_included_file_holds_blocks_and_targets_only(write_plan: Callable[..., Path]) -> None:
    """A full plan named in `include:` gets one error per key that belongs to the main plan,
    naming it; its blocks are merged all the same, so there is no follow-on "no block named"."""
    write_plan(HEAD + "blocks:\n  lrgb: [{expose: {count: 1, exposure: 10}}]\n", "other.yaml")
    main = write_plan(
        HEAD + "include: [other.yaml]\ntargets:\n  - name: M81\n"
        '    coordinates: {ra: "09:55:33", dec: "+69:03:55"}\n    sequence: [{use: lrgb}]\n',
        "main.yaml",
    )
    result = load_plan(main)
    assert not result.ok
    messages = [d.format().replace(str(main.parent) + "/", "") for d in result.diagnostics]
    assert messages == [
        f"other.yaml:{line}:1: error: '{key}' is not allowed in an included file: an included "
        f"file holds only include, blocks, targets; '{key}' belongs to the main plan "
        "(main.yaml)"
        for line, key in ((1, "version"), (2, "name"), (3, "site"))
    ]
