"""Hostile or broken files give one clean diagnostic and exit 1 — never a traceback or hang."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

CASES: list[tuple[str, bytes, str, str]] = [
    ("alias bomb", BOMB.encode(), "alias expansions", ""),
    ("binary", bytes(range(256)) * 4, "not a text file", "1:1"),
    ("latin-1", b"name: caf\xe9\n", "not UTF-8", "1:10"),
    ("empty", b"", "file is empty", "1:1"),
    ("only comments", b"# nothing\n\n# here\n", "file is empty", "1:1"),
    ("list root", b"- a\n- b\n", "must be a mapping", "1:1"),
    ("scalar root", b"hello\n", "must be a mapping", "1:1"),
    ("python tag", b"version: !!python/object/apply:os.system ['true']\n", "unsupported YAML tag",
     "1:10"),
    ("duplicate key", b"version: 1\nname: a\nname: b\n", "duplicate key 'name'", "3:1"),
    ("syntax", b"a: [1, 2\nb: 3\n", "invalid YAML", "2:2"),
    ("deep flow nesting", b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "", ""),
    ("deep block nesting", "".join("  " * i + f"k{i}:\n" for i in range(200)).encode(),
     "nesting deeper than", ""),
    ("too big", b"# " + b"x" * (5 * 1024 * 1024) + b"\n", "limited to 4 MiB", "1:1"),
]


@pytest.mark.parametrize(("content", "message", "where"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_file_gives_one_clean_error(
    tmp_path: Path, content: bytes, message: str, where: str
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert ": error: " in lines[0] and "Traceback" not in result.output
    assert message in lines[0]
    if where:
        assert lines[0].startswith(f"{path}:{where}: error:")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.yaml"), str(tmp_path)])
    assert result.exit_code == 1
    out = result.output.strip().splitlines()
    assert any("nope.yaml:1:1: error: no such file" in ln for ln in out)
    assert any("is a directory" in ln for ln in out)


def test_unquoted_clock_times_keep_their_meaning(write_plan: Callable[..., Path]) -> None:
    """YAML 1.1 reads 02:30 as the base-60 integer 150; a plan means half past two."""
    from runner.plan.loader import load_plan

    path = write_plan(
        """\
        version: 1
        name: t
        site: {latitude: 50, longitude: 5}
        targets:
          - name: A
            coordinates: {ra: 00:42:44.3, dec: 41:16:09}
            constraints: {until: 02:30}
            sequence: [{expose: {exposure: 1}}]
        """
    )
    result = load_plan(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.plan is not None
    target = result.plan.targets[0]
    assert str(target.constraints.until) == "02:30"
    assert target.coordinates.ra == pytest.approx(10.684583, abs=1e-5)
    assert target.coordinates.dec == pytest.approx(41.269167, abs=1e-5)
