"""Load YAML into frozen dataclasses, with errors that name file, line, key path and what is allowed.

The schema *is* the dataclasses: each field's type hint says what is allowed, and optional
``metadata`` adds ``min``/``max`` bounds, ``secret=True`` (never printed) and ``help`` text.
Supported hints: bool, int, float, str, ``X | None``, ``Literal[...]``, ``tuple[X, ...]``,
``dict[str, X]`` and nested dataclasses. Every problem in a file is collected before raising, so
a user fixes them all in one go.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key_path or '<top level>'}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a config file; ``str()`` lists them one per line."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_MISSING = object()


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.issues: list[ConfigIssue] = []

    def fail(self, node: yaml.Node | None, path: str, message: str) -> Any:
        line = node.start_mark.line + 1 if node is not None else None
        self.issues.append(ConfigIssue(self.file, line, path, message))
        return _MISSING

    def convert(self, node: yaml.Node, hint: Any, path: str, meta: typing.Mapping) -> Any:
        origin = get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in get_args(hint) if a is not type(None)]
            if _is_null(node):
                return None
            if len(options) == 1:
                return self.convert(node, options[0], path, meta)
            return self.fail(node, path, f"unsupported union {hint}")
        if origin is Literal:
            allowed = get_args(hint)
            if isinstance(node, yaml.ScalarNode) and node.value in allowed:  # YAML 1.1 reads a bare off/no as false
                return node.value
            value = _scalar(node)
            if value in allowed and isinstance(node, yaml.ScalarNode):
                return value
            suggestion = _did_you_mean(str(value), [str(a) for a in allowed])
            return self.fail(
                node, path,
                f"{_show(node)} is not allowed; allowed: {', '.join(map(str, allowed))}{suggestion}",
            )
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a hint is a class, never an instance
            return self.convert_dataclass(node, hint, path)
        if origin is tuple:
            return self.convert_sequence(node, get_args(hint)[0], path, meta)
        if origin is dict:
            return self.convert_mapping(node, get_args(hint)[1], path, meta)
        if hint in (bool, int, float, str):
            return self.convert_scalar(node, hint, path, meta)
        if hint is Any:
            return yaml.safe_load(yaml.serialize(node))
        raise TypeError(f"config schema uses an unsupported type {hint!r} at {path}")

    def convert_scalar(self, node: yaml.Node, hint: type, path: str, meta: typing.Mapping) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return self.fail(node, path, f"expected {_type_name(hint)}, got a {_node_kind(node)}")
        value = _scalar(node)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if hint is str and node.tag == "tag:yaml.org,2002:int":
            value = node.value
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            return self.fail(node, path, f"expected {_type_name(hint)}, got {_show(node)}")
        low, high = meta.get("min"), meta.get("max")
        if low is not None and value < low or high is not None and value > high:
            bounds = f"from {low} to {high}" if low is not None and high is not None else (
                f">= {low}" if low is not None else f"<= {high}")
            return self.fail(node, path, f"{value} is out of range; allowed: {bounds}")
        return value

    def convert_sequence(self, node: yaml.Node, item_hint: Any, path: str, meta: typing.Mapping) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            return self.fail(node, path, f"expected a list, got {_show(node)}")
        items = [self.convert(child, item_hint, f"{path}[{i}]", meta) for i, child in enumerate(node.value)]
        return _MISSING if any(i is _MISSING for i in items) else tuple(items)

    def convert_mapping(self, node: yaml.Node, value_hint: Any, path: str, meta: typing.Mapping) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return self.fail(node, path, f"expected a mapping, got {_show(node)}")
        result = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            result[key] = self.convert(value_node, value_hint, _join(path, key), meta)
        return _MISSING if any(v is _MISSING for v in result.values()) else result

    def convert_dataclass(self, node: yaml.Node | None, cls: type, path: str) -> Any:
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        given: dict[str, yaml.Node] = {}
        if node is not None and not _is_null(node):
            if not isinstance(node, yaml.MappingNode):
                return self.fail(node, path, f"expected a mapping, got {_show(node)}")
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in given:
                    self.fail(key_node, _join(path, key), "key given twice")
                elif key not in fields:
                    self.fail(
                        key_node, _join(path, key),
                        f"unknown key{_did_you_mean(key, list(fields))}; allowed: {', '.join(fields)}",
                    )
                else:
                    given[key] = value_node
        kwargs = {}
        for name, field in fields.items():
            hint = hints[name]
            if name in given:
                kwargs[name] = self.convert(given[name], hint, _join(path, name), field.metadata)
            elif field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
                kwargs[name] = self.convert_dataclass(None, hint, _join(path, name))
            else:
                kwargs[name] = self.fail(node, _join(path, name), f"required key is missing ({_type_name(hint)})")
        if any(v is _MISSING for v in kwargs.values()):
            return _MISSING
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:
            return self.fail(node, path, str(exc))


def load_yaml_config(path: str | Path | None, cls: type[T], text: str | None = None) -> T:
    """Parse ``path`` (or ``text``) into ``cls``; ``path=None`` and no text gives all defaults.

    Raises ConfigError listing every problem found.
    """
    file = str(path) if path is not None else "<defaults>"
    if text is None and path is not None:
        text = read_config_text(path)
    converter = _Converter(file)
    try:
        root = yaml.compose(text) if text else None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, _error_line(exc, text or ""), "", _yaml_problem(exc))]) from None
    result = converter.convert_dataclass(root, cls, "")
    if converter.issues:
        raise ConfigError(sorted(converter.issues, key=lambda issue: issue.line or 0))
    return result


def read_config_text(path: str | Path) -> str:
    """The file's text; a file that cannot be read or is not text (binary garbage) is a ConfigError."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(file, line, "", (
            f"not a text file: byte {exc.start} (0x{data[exc.start]:02x}) is not UTF-8; "
            "allowed: a YAML text file (see `parley config-reference`)"))]) from None


def _error_line(exc: yaml.YAMLError, text: str) -> int | None:
    """The line a person must edit. An error found only at the end of the file (an unclosed
    bracket or quote) is marked past the last line; the last line with content is the one to fix."""
    if isinstance(exc, yaml.reader.ReaderError):
        return text[:exc.position].count("\n") + 1
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return None
    if text[mark.index:].strip():
        return mark.line + 1
    before = text[:mark.index].rstrip()
    return before.count("\n") + 1 if before else 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):  # control characters: binary garbage, not a typo
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        return (f"not a text file: control character #x{code:02x} at character {exc.position}; "
                "allowed: a YAML text file (see `parley config-reference`)")
    context = getattr(exc, "context", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"not valid YAML: {problem}" + (f" ({context})" if context else "")


def to_plain(obj: Any, redact: bool = True) -> Any:
    """A dataclass tree as plain dicts/lists for printing, with ``secret`` fields replaced by ``***``."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if redact and field.metadata.get("secret") and value:
                out[field.name] = "***"
            else:
                out[field.name] = to_plain(value, redact)
        return out
    if isinstance(obj, tuple):
        return [to_plain(v, redact) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v, redact) for k, v in obj.items()}
    return obj


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return None
    return yaml.safe_load(yaml.serialize(node))


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _show(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(_scalar(node))
    return f"a {_node_kind(node)}"


def _node_kind(node: yaml.Node) -> str:
    return {yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}.get(type(node), "scalar")


def _type_name(hint: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
