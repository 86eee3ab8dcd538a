"""YAML configuration files read with positions, so every error names file:line:column.

Owns: parsing YAML safely, refusing duplicate keys (Camel users' top trap: a duplicated key
silently drops a branch), remembering where each value stood, and turning pydantic
validation errors into ConfigErrors that point at the offending line with the bad value
and what would be valid (the keys allowed at that place, the close spellings, the field's
description). A model's cross-field validator points at the value it blames by raising
LocatedValueError with that value's path.
Must not: know what the files mean (nodes, routes, ...): callers pass the model.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from protocols.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
Marks = dict[tuple, tuple[int, int]]


class LocatedValueError(ValueError):
    """Raised by a model validator to blame one value: `path` is relative to the model
    (e.g. ("nodes", 3, "code")), so the error points at that line, not at the model's start."""

    def __init__(self, message: str, *path: str | int) -> None:
        super().__init__(message)
        self.path = path


class _MarkingLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and records (line, column) per path."""


def _construct_mapping(loader: _MarkingLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            first = seen[key].start_mark
            raise ConfigError(
                f"duplicate key {key!r} (first at line {first.line + 1}); a YAML mapping may name a key once",
                file=loader.name, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1,
            )
        seen[key] = key_node
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_MarkingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _collect_marks(node: yaml.Node, path: tuple, marks: Marks) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            marks[(*path, key, "__key__")] = (k.start_mark.line + 1, k.start_mark.column + 1)
            _collect_marks(v, (*path, key), marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_marks(item, (*path, i), marks)


def load_text(text: str, name: str) -> tuple[Any, Marks]:
    """Parse YAML text; returns (data, marks). Raises ConfigError with the position."""
    try:
        loader = _MarkingLoader(text)
        loader.name = name
        try:
            root = loader.get_single_node()
            if root is None:
                return None, {}
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"not valid YAML: {exc.problem or exc.context}",
            file=name, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
        ) from None
    marks: Marks = {}
    _collect_marks(root, (), marks)
    return data, marks


def position(marks: Marks, loc: tuple) -> tuple[int | None, int | None]:
    """Closest recorded position for a pydantic error location."""
    path = tuple(loc)
    while path:
        if path in marks:
            return marks[path]
        # an unknown key is reported at the key itself
        if (*path[:-1], path[-1], "__key__") in marks:
            return marks[(*path[:-1], path[-1], "__key__")]
        path = path[:-1]
    return marks.get((), (None, None))


def _pydantic_loc(err: dict) -> tuple:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    blamed = (err.get("ctx") or {}).get("error")
    if isinstance(blamed, LocatedValueError):
        loc = (*loc, *blamed.path)
    return loc


def _annotation_at(model: type[BaseModel] | None, loc: tuple) -> tuple[Any, Any]:
    """Walk a model's annotations along a pydantic location: (annotation there, last field info)."""
    annotation: Any = model
    info = None
    for part in loc:
        annotation = _unwrap(annotation, part)
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if isinstance(part, str) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = {(f.alias or name): f for name, f in annotation.model_fields.items()}.get(part)
            if info is None:
                return None, None
            annotation = info.annotation
        elif isinstance(part, int) and origin is list and args:
            annotation = args[0]
        elif isinstance(part, str) and origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None, None
    return annotation, info


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model whose mapping stands at `loc`, if the location leads to one."""
    annotation = _unwrap(_annotation_at(model, loc)[0], "key")
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: Any, part: Any) -> Any:
    """The arm of an Optional/Union/Annotated that can hold `part` (a model for a key, a list for an index)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        for arm in arms:
            if isinstance(part, int) and typing.get_origin(arm) is list:
                return arm
            if isinstance(part, str) and (typing.get_origin(arm) is dict
                                          or (isinstance(arm, type) and issubclass(arm, BaseModel))):
                return arm
        return arms[0] if len(arms) == 1 else annotation
    return annotation


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(err: dict, model: type[BaseModel] | None = None, loc: tuple | None = None) -> str:
    loc = loc if loc is not None else _pydantic_loc(err)
    where = ".".join(str(p) for p in loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        owner = _model_at(model, loc[:-1])
        if owner is None:
            return f"unknown key {key!r}; remove it or check its spelling against the schema"
        allowed = _keys_of(owner)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {key!r}; {hint}valid keys here: {', '.join(allowed)}"
    if kind == "missing":
        key = str(loc[-1]) if loc else "?"
        parent = ".".join(str(p) for p in loc[:-1])
        _, info = _annotation_at(model, loc)
        about = f" ({info.description})" if info is not None and info.description else ""
        return f"{parent + ': ' if parent else ''}required key {key!r} is missing{about}"
    msg = err["msg"]
    if kind.startswith("value_error"):
        msg = msg.removeprefix("Value error, ")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        shown += "; write it in quotes: YAML reads unquoted digits as a number (00 becomes 0)"
    return f"{where}: {msg}{shown}" if where else f"{msg}{shown}"


def validation_errors(exc: ValidationError, marks: Marks, name: str,
                      model: type[BaseModel] | None = None) -> list[ConfigError]:
    out = []
    for err in exc.errors():
        loc = _pydantic_loc(err)
        key_mark = marks.get((*loc, "__key__")) if err["type"] == "extra_forbidden" and loc else None
        line, col = key_mark or position(marks, loc)
        out.append(ConfigError(_describe(err, model, loc), file=name, line=line, column=col))
    return out


def load_model(path: Path | str, model: type[M], *, text: str | None = None) -> tuple[M, Marks]:
    """Read a YAML file into a pydantic model; raises ConfigErrorGroup with every problem."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("file not found", file=name) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"file is not UTF-8 (byte offset {exc.start})", file=name) from None
    data, marks = load_text(text, name)
    if data is None:
        raise ConfigError("file is empty", file=name, line=1, column=1)
    try:
        return model.model_validate(data), marks
    except ValidationError as exc:
        errors = validation_errors(exc, marks, name, model)
        raise ConfigErrorGroup(errors) from None


class ConfigErrorGroup(ConfigError):
    """Several configuration errors found at once (lint reports them all)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.detail, file=first.file, line=first.line, column=first.column)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
