"""TOML tables into the schema's structs, key by key, so that every bad key is reported at once.

msgspec converts each value and checks the constraints declared beside its
field; its ValidationError becomes a (dotted key, reason) problem in the words
of docs/configuration.md. A key that does not convert takes its default, so the
other keys are still checked.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec
from msgspec import inspect

Problem = tuple[str, str]  # (dotted key, reason)

_TYPE_NAMES = {
    "object": "a table",
    "array": "an array",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "nothing",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def convert(value: object, kind: Any, key: str) -> tuple[Any, list[Problem]]:
    """`value` as the schema type `kind`, or None with the problems that prevent it.

    Tables convert key by key and arrays of tables item by item, so one bad key
    neither hides another nor discards the keys around it. (No schema value is None.)
    """
    struct = _struct(kind)
    if struct is not None and isinstance(value, dict):
        return _table(value, struct, key)
    items = _struct(_item_type(kind))
    if items is not None and isinstance(value, list):
        # Item by item, so that one entry that is not a table hides no other entry's problems.
        converted = [_item(item, items, f"{key}[{i}]") for i, item in enumerate(value)]
        problems = [problem for _, found in converted for problem in found]
        if any(table is None for table, _ in converted):
            return None, problems
        return tuple(table for table, _ in converted), problems
    try:
        return msgspec.convert(value, kind), []
    except msgspec.ValidationError as exc:
        return None, [_problem(str(exc), kind, value, key)]


def convert_items(value: object, kind: Any) -> list[tuple[int, Any]]:
    """(index, entry) for each entry of an array of tables that converts on its own (its
    problems are those `convert` reports): the good entries of an array with a bad one."""
    items = _struct(_item_type(kind))
    if items is None or not isinstance(value, list):
        return []
    converted = [(i, _item(item, items, "")[0]) for i, item in enumerate(value)]
    return [(i, entry) for i, entry in converted if entry is not None]


def _item(value: object, struct: type[msgspec.Struct], key: str) -> tuple[Any, list[Problem]]:
    if isinstance(value, dict):
        return _table(value, struct, key)
    try:
        return msgspec.convert(value, struct), []
    except msgspec.ValidationError as exc:
        return None, [_problem(str(exc), struct, value, key)]


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    """The reason for an unknown key or section, with the known name it is closest to."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what}; did you mean {close[0]!r}?" if close else f"unknown {what}"


def schema_order(key: str, sections: Mapping[str, Any]) -> tuple[int, ...]:
    """Where a dotted key comes in the schema (`sections` is the top level): problems sort
    by it. A key the schema does not have comes first in its table, where a misspelt key
    is most easily seen; a position that is not a key (`line 3, column 15`) comes first."""
    rank: list[int] = []
    fields: Mapping[str, Any] | None = sections
    for index, name in re.findall(r"\[(\d+)\]|([^.\[\]]+)", key):
        if index:
            rank.append(int(index))
            continue
        if fields is None or name not in fields:
            rank.append(-1)
            break
        rank.append(list(fields).index(name))
        kind = fields[name]
        struct = _struct(kind) or _struct(_item_type(kind))
        fields = (
            None if struct is None else {f.name: f.type for f in msgspec.structs.fields(struct)}
        )
    return tuple(rank)


def _table(
    data: Mapping[str, Any], struct: type[msgspec.Struct], key: str
) -> tuple[msgspec.Struct | None, list[Problem]]:
    fields = {field.name: field for field in msgspec.structs.fields(struct)}
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, raw in data.items():
        field = fields.get(name)
        if field is None:
            problems.append((f"{key}.{name}", unknown("key", name, fields)))
            continue
        value, found = convert(raw, field.type, f"{key}.{name}")
        problems += found
        if value is not None:
            values[name] = value
    for field in fields.values():
        if field.required and field.name not in data:
            problems.append((f"{key}.{field.name}", "required key is missing"))
    if any(field.required and field.name not in values for field in fields.values()):
        return None, problems
    return struct(**values), problems


def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return {field.name: field.type for field in msgspec.structs.fields(struct)}


def _struct(kind: Any) -> type[msgspec.Struct] | None:
    return kind if isinstance(kind, type) and issubclass(kind, msgspec.Struct) else None


def _item_type(kind: Any) -> Any:
    """The item type of `tuple[X, ...]`, else None."""
    if typing.get_origin(kind) is tuple:
        return typing.get_args(kind)[0]
    return None


def _problem(message: str, kind: Any, value: object, key: str) -> Problem:
    text, _, where = message.partition(" - at `")
    # msgspec's path is relative to the value converted: `$`, `$[2]`.
    path = where.rstrip("`")[1:]
    key += path
    if found := re.fullmatch(r"Expected `(.*)`, got `(.*)`", text):
        expected, got = (_TYPE_NAMES.get(t, t) for t in found.groups())
        return key, f"expected {expected}, got {got}"
    if text.startswith(("Expected `", "Invalid enum value")):  # a declared constraint
        if found := re.fullmatch(r"\[(\d+)\]", path):
            # An array's item: the only nesting left once tables are converted key by key.
            kind, value = _item_type(kind), typing.cast(list[object], value)[int(found.group(1))]
        if reason := _broken_constraint(kind, value):
            return key, reason
    return key, text[:1].lower() + text[1:]


def _broken_constraint(kind: Any, value: object) -> str:
    """The reason a value breaks the constraint declared on `kind`, "" if not one of ours."""
    info = inspect.type_info(kind)
    description = ""
    if isinstance(info, inspect.Metadata):
        description = (info.extra_json_schema or {}).get("description", "")
        info = info.type
    if isinstance(info, inspect.LiteralType):
        # In the order written, which type_info does not keep.
        allowed = typing.get_args(kind) if typing.get_origin(kind) is Literal else info.values
        return _one_of(tuple(str(v) for v in allowed), str(value))
    if isinstance(info, inspect.IntType) and info.ge is not None and info.le is not None:
        return f"must be from {info.ge} to {info.le}, not {value}"
    if isinstance(info, inspect.FloatType) and description:
        return f"{description}, not {_number(value)}"
    return str(description)


def _one_of(allowed: tuple[str, ...], value: str) -> str:
    close = difflib.get_close_matches(value.lower(), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f", not {value!r}"
    return f"must be one of {', '.join(allowed)}{hint}"


def _number(value: object) -> str:
    try:
        return format(value, "g")
    except (OverflowError, TypeError, ValueError):  # an int too large for a float
        return str(value)
