"""YAML with positions, and pydantic validation reported as `file:line:col` diagnostics.

`parse_yaml` reads a document with `yaml.safe_load` semantics (plain data only: no tags
beyond YAML's standard ones, no objects) and keeps, for every dotted path such as
`scenes.1.effect`, the 1-based line and column of its value and of its key. PyYAML's
silent "last duplicate key wins" becomes an error at the second occurrence.

`validate_data` runs a pydantic model over parsed data and turns each pydantic error into
a `Diagnostic` that says what was expected and what was found, with did-you-mean
suggestions for unknown keys and enum values. `load_model` is the one-call version for a
file (the effect presets use it). Every problem of a file is reported at once.
"""

from __future__ import annotations

import datetime
import difflib
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kandanim.errors import Diagnostic, ScreenplayError, UserError

M = TypeVar("M", bound=BaseModel)
PathKey = tuple[Any, ...]  # a data path: mapping keys and list indices, outermost first
KeyHint = Callable[[PathKey], "str | None"]  # a better message for an unknown key, or None

# A document this large is not a screenplay; the cap also defuses alias bombs
# ("billion laughs"), which expand exponentially when walked.
MAX_NODES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    col: int  # 1-based


NOWHERE = Position(0, 0)  # in-memory data: no file position to show


@dataclass
class SourceDocument:
    """Parsed plain data plus where each value (and each mapping key) sits in the text."""

    file: str
    data: Any
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)

    def locate(self, path: Sequence[Any], *, key: bool = False) -> Position:
        """Position of the value (or key) at `path`, else of its nearest located ancestor."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        for depth in range(len(path), -1, -1):
            found = self.values.get(path[:depth])
            if found is not None:
                return found
        return NOWHERE

    def diagnostic(self, path: Sequence[Any], message: str, *, key: bool = False) -> Diagnostic:
        where = self.locate(path, key=key)
        return Diagnostic(self.file, where.line, where.col, dotted(path), message)


def dotted(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path)


# --------------------------------------------------------------------------- parsing


class _DocumentProblem(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def read_text(path: Path) -> str:
    """The file's text; a missing, unreadable or non-UTF-8 file is a UserError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file", hint="check the path and its spelling") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a YAML file") from None
    except OSError as error:
        raise UserError(
            f"{path}: cannot read the file ({error.strerror or error})",
            hint="check that the file exists and that you may read it",
        ) from None
    try:
        return raw.decode("utf-8-sig")  # tolerate a BOM written by some editors
    except UnicodeDecodeError as error:
        where = _position_of_offset(raw[: error.start].decode("utf-8", "replace"), error.start)
        raise ScreenplayError(
            [
                Diagnostic(
                    str(path),
                    where.line,
                    where.col,
                    "",
                    f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x}); save it as UTF-8",
                )
            ]
        ) from None


def parse_yaml(text: str, file: str) -> SourceDocument:
    """Parse one YAML document into plain data with positions; ScreenplayError if unusable.

    The top level must be a mapping (every kandanim file is one).
    """
    try:
        return _parse(text, file)
    except _DocumentProblem as problem:
        raise ScreenplayError([problem.diagnostic]) from None


def _parse(text: str, file: str) -> SourceDocument:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        raise _DocumentProblem(_reader_error_diagnostic(error, text, file)) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            raise _DocumentProblem(_yaml_error_diagnostic(error, file)) from None
        except yaml.reader.ReaderError as error:
            raise _DocumentProblem(_reader_error_diagnostic(error, text, file)) from None
        except yaml.YAMLError as error:
            raise _DocumentProblem(Diagnostic(file, 1, 1, "", f"invalid YAML: {error}")) from None
        if root is None:
            raise _DocumentProblem(
                Diagnostic(file, 1, 1, "", "the file is empty; expected a mapping of fields")
            )
        document = SourceDocument(file=file, data=None)
        builder = _Builder(loader, document)
        document.data = builder.build(root, ())
        if not isinstance(document.data, dict):
            raise _DocumentProblem(
                document.diagnostic(
                    (),
                    f"expected a mapping of fields at the top level, found {describe(document.data)}",
                )
            )
        return document
    finally:
        loader.dispose()


def _reader_error_diagnostic(error: yaml.reader.ReaderError, text: str, file: str) -> Diagnostic:
    where = _position_of_offset(text, error.position)
    character = error.character if isinstance(error.character, int) else ord(error.character)
    message = f"control character U+{character:04X} is not allowed in YAML text"
    return Diagnostic(file, where.line, where.col, "", message)


def _yaml_error_diagnostic(error: yaml.MarkedYAMLError, file: str) -> Diagnostic:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = error.problem or "invalid YAML"
    if "'\\t'" in problem or "\t" in problem:
        message = "tab character: YAML indents with spaces only"
    elif "another document" in problem:
        message = "a second YAML document ('---'): a file holds exactly one"
    else:
        context = f" {error.context}" if error.context else ""
        started = error.context_mark
        if started is not None and mark is not None and started.line != mark.line:
            context += f" (which started at {started.line + 1}:{started.column + 1})"
        message = f"invalid YAML: {problem}{context}"
    return Diagnostic(file, line, col, "", message)


def _position_of_offset(text: str, offset: int) -> Position:
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return Position(line, col)


def _mark(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Walks a composed YAML node tree into plain data, recording positions on the way.

    Scalars go through PyYAML's SafeConstructor, so values are exactly what
    `yaml.safe_load` would give (ints, floats, bools, null, dates, strings).
    """

    def __init__(self, loader: yaml.SafeLoader, document: SourceDocument) -> None:
        self.loader = loader
        self.document = document
        self.visited = 0
        self.active: set[int] = set()  # nodes on the current walk, to catch recursive aliases

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise _DocumentProblem(
                self.document.diagnostic(
                    path, f"the document is too large (over {MAX_NODES} values)"
                )
            )
        self.document.values.setdefault(path, _mark(node))
        if id(node) in self.active:
            raise _DocumentProblem(
                self.document.diagnostic(path, "an alias refers to its own anchor (recursive data)")
            )
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                self._plain_tag(node, "tag:yaml.org,2002:seq", path)
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.Node, path: PathKey) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            raise _DocumentProblem(
                self.document.diagnostic(path, _constructor_message(error, node))
            ) from None
        except (ValueError, OverflowError) as error:  # e.g. a timestamp like 2024-13-45
            raise _DocumentProblem(
                self.document.diagnostic(path, f"invalid value {node.value!r}: {error}")
            ) from None

    def _plain_tag(self, node: yaml.Node, tag: str, path: PathKey) -> None:
        if node.tag != tag:
            message = f"tag {node.tag!r} is not allowed (plain data only: no tags, no objects)"
            raise _DocumentProblem(self.document.diagnostic(path, message))

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[Any, Any]:
        self._plain_tag(node, "tag:yaml.org,2002:map", path)
        result: dict[Any, Any] = {}
        own_keys: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            if key in own_keys:
                first = own_keys[key]
                raise _DocumentProblem(
                    Diagnostic(
                        self.document.file,
                        _mark(key_node).line,
                        _mark(key_node).col,
                        dotted(path + (key,)),
                        f"duplicate key {key!r} (first set at line {first.line})",
                    )
                )
            own_keys[key] = _mark(key_node)
        # `<<: *anchor` merges: merged keys first, explicit keys override them (as safe_load).
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, result)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            self.document.keys[path + (key,)] = _mark(key_node)
            self.document.values.pop(path + (key,), None)  # an explicit key beats a merged one
            result[key] = self.build(value_node, path + (key,))
        return result

    def _merge(self, value_node: yaml.Node, path: PathKey, result: dict[Any, Any]) -> None:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise _DocumentProblem(self.document.diagnostic(path, "'<<' merges mappings only"))
            merged = self.build(source, path)
            for key, value in merged.items():
                result.setdefault(key, value)

    def _key(self, key_node: yaml.Node, path: PathKey) -> Any:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _DocumentProblem(
                Diagnostic(
                    self.document.file,
                    _mark(key_node).line,
                    _mark(key_node).col,
                    dotted(path),
                    "a key must be a plain word, not a list or mapping",
                )
            )
        return self._scalar(key_node, path)


def _constructor_message(error: yaml.constructor.ConstructorError, node: yaml.Node) -> str:
    if node.tag.startswith("tag:yaml.org,2002:") and "could not determine" not in str(error):
        return f"invalid value {node.value!r}: {error.problem}"
    return f"tag {node.tag!r} is not allowed (plain data only: no tags, no objects)"


# --------------------------------------------------------------------------- validation


def load_model(path: Path, model: type[M], *, text: str | None = None) -> M:
    """Read, parse and validate one YAML file as `model`; ScreenplayError lists every problem."""
    if text is None:
        text = read_text(path)
    document = parse_yaml(text, str(path))
    value, diagnostics = validate_data(document, model)
    if diagnostics:
        raise ScreenplayError(diagnostics)
    assert value is not None
    return value


def validate_data(
    document: SourceDocument,
    model: type[M],
    *,
    data: Any = None,
    key_hint: KeyHint | None = None,
) -> tuple[M | None, list[Diagnostic]]:
    """Validate `document.data` (or `data`, a prepared copy) and map errors to positions.

    Returns the model, or None with the diagnostics sorted by position. Works on
    in-memory data too: build the document with `document_from_data`. `key_hint` may
    word an unknown-key message better than the generic did-you-mean (e.g. "this key
    belongs under defaults:").
    """
    payload = _plain(document.data if data is None else data)
    try:
        return model.model_validate(payload), []
    except ValidationError as error:
        return None, translate_errors(error, model, document, payload, key_hint=key_hint)


def document_from_data(data: Any, name: str) -> SourceDocument:
    """A SourceDocument for data built in code: no positions, so messages carry paths only."""
    return SourceDocument(file=name, data=_plain(data))


def _plain(value: Any) -> Any:
    """Tuples become lists (strict validation wants lists); mappings are copied."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def translate_errors(
    error: ValidationError,
    model: type[BaseModel],
    document: SourceDocument,
    data: Any,
    *,
    key_hint: KeyHint | None = None,
) -> list[Diagnostic]:
    """Every pydantic error as a clean, positioned Diagnostic (sorted, de-duplicated)."""
    located = [_locate_error(e, data) for e in error.errors(include_url=False)]
    diagnostics: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for data_path, errors in _group_unions(located):
        for diagnostic in _diagnose(data_path, errors, model, document, key_hint):
            marker = (diagnostic.path, diagnostic.message)
            if marker not in seen:
                seen.add(marker)
                diagnostics.append(diagnostic)
    return sort_diagnostics(diagnostics)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (str(d.file), d.line, d.col, d.path))


@dataclass(frozen=True)
class _Located:
    """A pydantic error with its loc split into the path in the data and union branches."""

    data_path: PathKey
    union_at: int | None  # length of data_path where a union branch was taken
    branch: str | None
    error: dict[str, Any]


def _locate_error(error: dict[str, Any], data: Any) -> _Located:
    """Follow `loc` through the data; segments that are not in the data are union tags."""
    loc = tuple(error["loc"])
    path: list[Any] = []
    current = data
    union_at: int | None = None
    branch: str | None = None
    for index, segment in enumerate(loc):
        last = index == len(loc) - 1
        if _has_child(current, segment):
            current = current[segment]
            path.append(segment)
        elif last and error["type"] in ("missing", "extra_forbidden", "invalid_key"):
            path.append(segment)
        elif isinstance(segment, str) and union_at is None:
            union_at, branch = len(path), segment
        else:
            path.append(segment)
    return _Located(tuple(path), union_at, branch, error)


def _has_child(container: Any, segment: Any) -> bool:
    if isinstance(container, dict):
        return segment in container
    if isinstance(container, list) and isinstance(segment, int):
        return 0 <= segment < len(container)
    return False


def _group_unions(located: list[_Located]) -> list[tuple[PathKey, list[_Located]]]:
    """Keep the union branch that fits the input; merge errors when no branch fits at all.

    A union such as `strength: 0.2 | [{t, value}]` makes pydantic report one error per
    branch. Branches whose only complaint is a wrong type at the union itself did not
    match the input's shape; if another branch got further, its errors are the real ones.
    """
    plain = [(item.data_path, [item]) for item in located if item.union_at is None]
    by_union: dict[PathKey, list[_Located]] = {}
    for item in located:
        if item.union_at is not None:
            by_union.setdefault(item.data_path[: item.union_at], []).append(item)
    grouped: list[tuple[PathKey, list[_Located]]] = list(plain)
    for union_path, items in by_union.items():
        branches: dict[str | None, list[_Located]] = {}
        for item in items:
            branches.setdefault(item.branch, []).append(item)
        fitting = [errs for errs in branches.values() if not _shape_mismatch(errs, union_path)]
        if fitting:
            for errs in fitting:
                grouped.extend((item.data_path, [item]) for item in errs)
        else:
            grouped.append((union_path, items))
    return grouped


def _shape_mismatch(errors: list[_Located], union_path: PathKey) -> bool:
    return len(errors) == 1 and errors[0].data_path == union_path and _is_type_error(errors[0])


def _is_type_error(item: _Located) -> bool:
    kind = item.error["type"]
    return kind.endswith(("_type", "_parsing")) or kind == "int_from_float"


def _diagnose(
    data_path: PathKey,
    errors: list[_Located],
    model: type[BaseModel],
    document: SourceDocument,
    key_hint: KeyHint | None,
) -> list[Diagnostic]:
    if len(errors) > 1:  # no union branch fits: one message naming every accepted shape
        expected = " or ".join(dict.fromkeys(_expected_from_error(e.error) for e in errors))
        found = describe(errors[0].error.get("input"))
        return [document.diagnostic(data_path, f"expected {expected}, found {found}")]
    error = errors[0].error
    kind = error["type"]
    if kind == "extra_forbidden":
        message = (key_hint(data_path) if key_hint else None) or _unknown_key_message(
            data_path, model
        )
        return [document.diagnostic(data_path, message, key=True)]
    if kind == "invalid_key":
        message = f"keys must be text, found {describe(data_path[-1])}"
        return [document.diagnostic(data_path, message, key=True)]
    if kind == "missing":
        parent = data_path[:-1]
        message = f"missing required field '{data_path[-1]}'"
        return [_with_path(document.diagnostic(parent, message), data_path)]
    return [document.diagnostic(data_path, _value_message(error, data_path, model))]


def _with_path(diagnostic: Diagnostic, path: PathKey) -> Diagnostic:
    return Diagnostic(
        diagnostic.file, diagnostic.line, diagnostic.col, dotted(path), diagnostic.message
    )


def _unknown_key_message(data_path: PathKey, model: type[BaseModel]) -> str:
    key = data_path[-1]
    allowed = sorted(field_names_at(model, data_path[:-1]))
    suggestion = did_you_mean(str(key), allowed)
    if suggestion:
        return f"unknown key '{key}'{suggestion}"
    if allowed:
        return f"unknown key '{key}'; expected one of: {', '.join(allowed)}"
    return f"unknown key '{key}'"


def _value_message(error: dict[str, Any], data_path: PathKey, model: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    found = error.get("input")
    if kind == "literal_error":
        options = literal_options_at(model, data_path)
        if options:
            listed = ", ".join(str(o) for o in options)
            hint = (
                did_you_mean(str(found), [str(o) for o in options])
                if isinstance(found, str)
                else ""
            )
            return f"expected one of {listed}, found {describe(found)}{hint}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"])).removeprefix("Value error, ")
    bound = _bound_message(kind, ctx)
    if bound:
        return f"{bound}, found {describe(found)}"
    if kind in ("too_short", "string_too_short", "list_too_short"):
        minimum = ctx.get("min_length", 1)
        if minimum == 1:
            return "must not be empty"
        return f"needs at least {minimum} items, found {describe(found)}"
    if kind in ("too_long", "string_too_long"):
        return f"may have at most {ctx.get('max_length')} items"
    expected = _expected_from_error(error)
    if expected:
        return f"expected {expected}, found {describe(found)}{_text_hint(found)}"
    return error["msg"]


def _bound_message(kind: str, ctx: dict[str, Any]) -> str | None:
    words = {
        "greater_than": ("gt", "must be greater than"),
        "greater_than_equal": ("ge", "must be at least"),
        "less_than": ("lt", "must be less than"),
        "less_than_equal": ("le", "must be at most"),
        "multiple_of": ("multiple_of", "must be a multiple of"),
    }
    if kind not in words:
        return None
    key, phrase = words[kind]
    return f"{phrase} {_number(ctx.get(key))}"


_EXPECTED = {
    "float": "a number",
    "int": "a whole number",
    "bool": "true or false",
    "string": "text",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "path": "a file path",
    "none": "nothing",
    "int_from_float": "a whole number",
}


def _expected_from_error(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "int_from_float":
        return "a whole number"
    for suffix in ("_type", "_parsing"):
        if kind.endswith(suffix):
            stem = kind.removesuffix(suffix)
            return _EXPECTED.get(stem, stem.replace("_", " "))
    bound = _bound_message(kind, error.get("ctx") or {})
    if bound:
        return (
            f"a value that {bound.removeprefix('must ')}" if bound.startswith("must be") else bound
        )
    return str(error.get("msg", "a valid value")).removeprefix("Input should be ")


def _text_hint(found: Any) -> str:
    """A quoted number or '4s' where a number belongs: say what to write instead."""
    if isinstance(found, str):
        try:
            float(found)
        except ValueError:
            pass
        else:
            return " (remove the quotes)"
        digits = found.strip().rstrip("abcdefghijklmnopqrstuvwxyz% ").strip()
        if digits and digits != found.strip():
            try:
                float(digits)
            except ValueError:
                return ""
            return f" (write {digits} without a unit)"
    return ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe(value: Any) -> str:
    """A short, user-facing description of a parsed YAML value."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text {shown!r}"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"a date ({value.isoformat()}); quote it to make it text"
    if isinstance(value, (list, tuple)):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " — did you mean 'x'?" for a close match, else ""."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in choices}
        matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        matches = [lowered[m] for m in matches]
    return f" — did you mean '{matches[0]}'?" if matches else ""


# --------------------------------------------------------------------------- model types


def _leaf_types(annotation: Any) -> list[Any]:
    """Unwrap Annotated/Optional/unions into the concrete member types."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaf_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                members.extend(_leaf_types(arg))
        return members
    return [annotation]


def _types_at(model: type[BaseModel], path: PathKey) -> list[Any]:
    current: list[Any] = [model]
    for segment in path:
        following: list[Any] = []
        for candidate in current:
            following.extend(_step(candidate, segment))
        current = following
    return current


def _step(annotation: Any, segment: Any) -> list[Any]:
    found: list[Any] = []
    for leaf in _leaf_types(annotation):
        origin = typing.get_origin(leaf)
        if isinstance(leaf, type) and issubclass(leaf, BaseModel) and isinstance(segment, str):
            info = leaf.model_fields.get(segment)
            if info is not None:
                found.extend(_leaf_types(info.annotation))
        elif origin in (list, tuple, Sequence) and isinstance(segment, int):
            found.extend(_leaf_types(typing.get_args(leaf)[0]))
        elif origin is dict:
            found.extend(_leaf_types(typing.get_args(leaf)[1]))
    return found


def field_names_at(model: type[BaseModel], path: PathKey) -> set[str]:
    """Names of the fields a mapping at `path` may hold (empty if not a model there)."""
    names: set[str] = set()
    for leaf in _types_at(model, path):
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            names.update(leaf.model_fields)
    return names


def literal_options_at(model: type[BaseModel], path: PathKey) -> list[Any]:
    options: list[Any] = []
    for leaf in _types_at(model, path):
        if typing.get_origin(leaf) is typing.Literal:
            options.extend(a for a in typing.get_args(leaf) if a not in options)
    return options
