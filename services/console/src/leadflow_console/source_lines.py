"""YAML (or JSON) text edited in a textarea, and the services' field errors placed at their line.

A service names the field at fault by a path (``fit_rules[2].points``, ``rules.0.team_id``); the
console parses the text it sent with PyYAML's node marks and finds the line that path starts on, so
the editor can show each message next to the line it is about."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import yaml

# Parts of a path that name the request rather than the document: a draft posted as {"model": ...}.
_ENVELOPES = frozenset({"body", "model"})
_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
# Deeper than any routing rule set or scoring model needs.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Problem:
    """A message about ``field`` (a service's path), placed at ``line`` (1-based; None: the whole text)."""

    field: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class SourceLine:
    number: int
    text: str
    problems: tuple[Problem, ...] = ()


@dataclass
class Parsed:
    """The document the text holds, its node tree (for line numbers), or the syntax problem."""

    document: Any = None
    root: yaml.Node | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse(text: str) -> Parsed:
    """Parse ``text`` as YAML (JSON is YAML too); a syntax error becomes a problem at its line. Aliases and
    deep nesting are refused (a few lines of aliases would expand to gigabytes when sent as JSON), and
    dates, sets and binary values come back as JSON-ready values."""
    try:
        # The reader refuses control characters as it is made: inside the try.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        return Parsed(problems=[Problem("body", f"not valid YAML: {exc}")])
    try:
        root = loader.get_single_node()
        if root is not None and (problem := _refused(root)) is not None:
            return Parsed(problems=[problem])
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "not valid YAML"
        return Parsed(problems=[Problem("body", f"not valid YAML: {reason}",
                                        mark.line + 1 if mark is not None else None)])
    except (yaml.YAMLError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return Parsed(problems=[Problem("body", f"not valid YAML: {reason}")])
    finally:
        loader.dispose()
    return Parsed(document=_json_ready(document), root=root)


def _refused(root: yaml.Node) -> Problem | None:
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            return Problem("body", "aliases (*name) are not allowed; write the value out", node.start_mark.line + 1)
        seen.add(id(node))
        if depth > MAX_DEPTH:
            return Problem("body", f"nested more than {MAX_DEPTH} levels deep", node.start_mark.line + 1)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((part, depth + 1) for pair in node.value for part in pair)
    return None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity: sent as text, the service refuses it by its type.
        return str(value)
    return value


def path_parts(path: str) -> list[str | int]:
    """``model.fit_rules[2].all.0.value`` -> ``["fit_rules", 2, "all", 0, "value"]``."""
    parts: list[str | int] = []
    for index, name in _PATH_PART.findall(path):
        if index:
            parts.append(int(index))
        elif name.isdigit():
            parts.append(int(name))
        else:
            parts.append(name)
    while parts and parts[0] in _ENVELOPES:
        parts.pop(0)
    return parts


def line_of(root: yaml.Node | None, path: str) -> int | None:
    """The 1-based line where ``path`` starts in the document; for a missing key, the line of the nearest
    part that is there (a rule without ``points``: the rule's first line). None without a document."""
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in path_parts(path):
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line = key.start_mark.line + 1
                    found = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            found = node.value[part]
            line = found.start_mark.line + 1
        if found is None:
            break
        node = found
    return line


def place(root: yaml.Node | None, errors: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """A service's field errors (``{"field", "message"}``) as problems at their lines."""
    problems = []
    for error in errors:
        path = str(error.get("field") or "body")
        problems.append(Problem(path, str(error.get("message") or "invalid"),
                                None if path in _ENVELOPES else line_of(root, path)))
    return problems


def numbered(text: str, problems: Sequence[Problem]) -> list[SourceLine]:
    """The text's lines, numbered, each with the problems placed on it."""
    lines = text.splitlines() or [""]
    return [SourceLine(number, line, tuple(p for p in problems if p.line == number))
            for number, line in enumerate(lines, start=1)]
