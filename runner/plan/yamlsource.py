"""Safe YAML reading that keeps where every node came from.

PyYAML's ``safe_load`` loses positions and silently accepts duplicate keys, so we compose the
node graph (libyaml when available) and convert it ourselves: positions are recorded per path,
duplicate keys, foreign tags, excessive alias expansion (billion laughs), depth and size are all
reported as diagnostics — never a traceback, never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from runner.plan.diagnostics import Diagnostic, Mark, Severity

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 300_000
MAX_ALIAS_EXPANSIONS = 10_000

PathKey = tuple[str | int, ...]

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAGS: dict[tuple[Any, ...], str] = {}  # (node kind, scalar text, implicit) → resolved tag


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader with its tag resolution remembered. PyYAML resolves each node's tag in
    Python (regular expressions over the scalar's text) even under libyaml: 0.6 s of loading a
    10,000-step plan, whose nodes repeat a few dozen texts. The safe loader has no path
    resolvers, so a tag depends only on (kind, text, implicit)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if value is not None and len(value) > 64:  # long texts are seldom repeated
            return str(super().resolve(kind, value, implicit))
        key = (kind, value, implicit)
        tag = _TAGS.get(key)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_TAGS) < 20_000:
                _TAGS[key] = tag
        return tag
_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_constructor = SafeConstructor()


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document stands in its file."""

    values: dict[PathKey, Mark] = field(default_factory=dict)
    keys: dict[PathKey, Mark] = field(default_factory=dict)
    default: Mark = field(default_factory=lambda: Mark("<unknown>", 1, 1))

    def mark(self, path: PathKey) -> Mark:
        """The value at ``path``, or the nearest enclosing node that has a position."""
        p = tuple(path)
        while p:
            m = self.values.get(p)
            if m is not None:
                return m
            p = p[:-1]
        return self.values.get((), self.default)

    def key_mark(self, path: PathKey) -> Mark:
        """The key naming ``path`` (for unknown keys), else the value's position."""
        return self.keys.get(tuple(path)) or self.mark(path)

    def graft(self, other: Positions, src: PathKey, dst: PathKey) -> None:
        """Copy positions of ``other`` below ``src`` to below ``dst`` here (for includes)."""
        n = len(src)
        for table_from, table_to in ((other.values, self.values), (other.keys, self.keys)):
            for path, m in table_from.items():
                if path[:n] == src:
                    table_to[dst + path[n:]] = m


class _TooBig(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


@dataclass
class YamlDocument:
    file: str
    data: Any
    positions: Positions
    diagnostics: list[Diagnostic]


def _mark(file: str, m: yaml.Mark) -> Mark:
    return Mark(file, m.line + 1, m.column + 1)


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions = Positions(default=Mark(file, 1, 1))
        self.diagnostics: list[Diagnostic] = []
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()

    def error(self, mark: Mark, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(mark, message, Severity.error))

    def convert(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.nodes += 1
        mark = _mark(self.file, node.start_mark)
        if self.nodes > MAX_NODES:
            raise _TooBig(
                mark,
                f"document expands to more than {MAX_NODES:,} nodes (anchors/aliases "
                "expanding too far?)",
            )
        if depth > MAX_DEPTH:
            raise _TooBig(mark, f"nesting deeper than {MAX_DEPTH} levels")
        self.positions.values[path] = mark
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self.seen:
                self.aliases += 1
                if self.aliases > MAX_ALIAS_EXPANSIONS:
                    raise _TooBig(
                        mark,
                        f"more than {MAX_ALIAS_EXPANSIONS:,} alias expansions (an alias bomb?)",
                    )
            self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _STD + "seq":
                self.error(mark, f"unsupported YAML tag {node.tag!r}")
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, mark)

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[Any, Any]:
        if node.tag != _STD + "map":
            self.error(_mark(self.file, node.start_mark), f"unsupported YAML tag {node.tag!r}")
        out: dict[Any, Any] = {}
        first_seen: dict[Any, Mark] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _STD + "merge":
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for src in sources:
                    if isinstance(src, yaml.MappingNode):
                        merged.extend(src.value)
                    else:
                        self.error(_mark(self.file, src.start_mark), "'<<' merges mappings only")
                continue
            self._entry(key_node, value_node, path, depth, out, first_seen, explicit=True)
        for key_node, value_node in merged:
            self._entry(key_node, value_node, path, depth, out, first_seen, explicit=False)
        return out

    def _entry(
        self,
        key_node: yaml.Node,
        value_node: yaml.Node,
        path: PathKey,
        depth: int,
        out: dict[Any, Any],
        first_seen: dict[Any, Mark],
        *,
        explicit: bool,
    ) -> None:
        kmark = _mark(self.file, key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            self.error(kmark, "mapping keys must be plain scalars")
            return
        key = self._scalar(key_node, kmark)
        if isinstance(key, float | bool) or key is None:
            key = str(key_node.value)
        if key in first_seen:
            if explicit:
                prev = first_seen[key]
                self.error(kmark, f"duplicate key '{key}' (first defined at line {prev.line})")
            return  # merged keys never override explicit ones
        first_seen[key] = kmark
        self.positions.keys[(*path, key)] = kmark
        out[key] = self.convert(value_node, (*path, key), depth + 1)

    def _scalar(self, node: yaml.Node, mark: Mark) -> Any:
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            self.error(mark, f"unsupported YAML tag {tag!r} (plans use plain YAML values)")
            return node.value
        value: str = node.value
        if tag == _STD + "str":
            return value
        if tag == _STD + "timestamp":
            return value  # dates and times stay text; the models parse what they expect
        if tag in (_STD + "int", _STD + "float") and ":" in value:
            return value  # YAML 1.1 base-60 (02:30 → 150): keep the text people meant
        try:
            return _constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            return value


def article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def read_yaml(path: Path, *, display: str | None = None, what: str = "plan") -> YamlDocument:
    """Read one YAML file into plain data with positions; problems become diagnostics.

    ``what`` names the document in messages ("plan", "equipment profile"). The read is bounded:
    a device such as ``/dev/zero`` or a pipe has no size to check beforehand.
    """
    file = display or str(path)
    start = Mark(file, 1, 1)

    def fail(message: str, mark: Mark = start) -> YamlDocument:
        return YamlDocument(file, None, Positions(default=start), [Diagnostic.at(mark, message)])

    try:
        if path.is_dir():
            return fail(f"is a directory, not {article(what)} {what} file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return fail(f"file is {size / 1048576:.1f} MiB; {article(what)} {what} is limited "
                        "to 4 MiB")
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            return fail(f"more than 4 MiB to read (not a regular file?); {article(what)} {what} "
                        "is limited to 4 MiB")
    except FileNotFoundError:
        return fail("no such file")
    except OSError as exc:
        return fail(f"cannot read file: {exc.strerror or exc}")
    if b"\x00" in raw:
        return fail("not a text file (binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return fail("not UTF-8 text (binary data?)", Mark(file, line, col))
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        return fail(f"file is empty: expected {article(what)} {what} (a YAML mapping)")
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark or exc.context_mark
        where = _mark(file, m) if m is not None else start
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "found duplicate anchor" in str(exc):
            problem = "duplicate anchor"
        return fail(f"invalid YAML: {problem}", where)
    except yaml.YAMLError as exc:
        return fail(f"invalid YAML: {exc}")
    except RecursionError:
        return fail(f"nesting deeper than {MAX_DEPTH} levels")
    finally:
        loader.dispose()
    if root is None:
        return fail(f"file is empty: expected {article(what)} {what} (a YAML mapping)")
    conv = _Converter(file)
    try:
        data = conv.convert(root, (), 0)
    except _TooBig as exc:
        return YamlDocument(file, None, conv.positions, [Diagnostic.at(exc.mark, exc.message)])
    except RecursionError:
        return fail(f"nesting deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} value"
        conv.error(conv.positions.mark(()), f"the document must be a mapping of keys, not {kind}")
        return YamlDocument(file, None, conv.positions, conv.diagnostics)
    return YamlDocument(file, data, conv.positions, conv.diagnostics)
