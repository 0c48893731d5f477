"""What a record field accepts, compiled once from its type annotation.

This is the one place that walks typing annotations. ``shape_of(annotation)`` gives a
``Shape`` that answers every question the contract asks of a field:

- ``fits(value)``: yes or no, fast (it runs for every field of every reading and ping);
- ``problem(name, value)``: why not, in words, for the dead letter and the HTTP answer;
- ``json()``: the JSON Schema of the field, for the published schemas and the OpenAPI;
- ``from_text(text)``: a CSV cell typed as the field wants it (an empty cell is null).

Record fields use JSON's types only: None, bool, int, float, str, Literal[...], Optional,
unions of these, list[X], dict[str, X] and Any.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from typing import Any, Callable, Literal


class Shape:
    """Base: ``fits`` is set per instance to a plain function, the cheapest thing to call."""

    fits: Callable[[Any], bool]

    def problem(self, name: str, value: Any) -> str | None:
        raise NotImplementedError

    def json(self) -> dict[str, Any]:
        raise NotImplementedError

    def from_text(self, text: str) -> Any:
        return text  # left for the contract to refuse with its own words


class Anything(Shape):
    def __init__(self) -> None:
        self.fits = lambda v: True

    def problem(self, name, value):
        return None

    def json(self):
        return {}


class Null(Shape):
    def __init__(self) -> None:
        self.fits = lambda v: v is None

    def problem(self, name, value):
        return None if value is None else f"{name}: expected null"

    def json(self):
        return {"type": "null"}


class _Plain(Shape):
    """A JSON scalar type: fits, or says what it expected."""

    expected: str  # in words
    json_type: str

    def problem(self, name, value):
        return None if self.fits(value) else f"{name}: expected {self.expected}, got {value!r}"

    def json(self):
        return {"type": self.json_type}


def _parsed_or_kept(parse):
    """A from_text that parses the cell, or keeps the text for the contract to refuse."""
    def from_text(self, text):
        try:
            return parse(text)
        except ValueError:
            return text
    return from_text


class Boolean(_Plain):
    expected, json_type = "true or false", "boolean"

    def __init__(self) -> None:
        self.fits = lambda v: v is True or v is False


class Integer(_Plain):
    expected, json_type = "an integer", "integer"
    from_text = _parsed_or_kept(int)

    def __init__(self) -> None:
        self.fits = lambda v: type(v) is int


class Number(_Plain):
    expected, json_type = "a number", "number"
    from_text = _parsed_or_kept(float)

    def __init__(self) -> None:
        isfinite = math.isfinite
        self.fits = lambda v: (type(v) is float and isfinite(v)) or type(v) is int


class Text(_Plain):
    expected, json_type = "a string", "string"

    def __init__(self) -> None:
        self.fits = lambda v: type(v) is str


class OneOf(Shape):
    """Literal[...]: one of the allowed values, of the same type (True is not 1)."""

    def __init__(self, allowed: tuple) -> None:
        self.allowed = allowed
        kinds = frozenset(type(a) for a in allowed)
        self.fits = lambda v: type(v) in kinds and v in allowed

    def problem(self, name, value):
        return None if self.fits(value) else f"{name}: {value!r} is not one of {list(self.allowed)}"

    def json(self):
        return {"enum": list(self.allowed)}


def _first_problem(shape: Shape, named_items) -> str | None:
    """The first of (name, item) pairs that ``shape`` refuses, in words; None if it takes all."""
    return next((problem for name, item in named_items if (problem := shape.problem(name, item))), None)


class ListOf(Shape):
    def __init__(self, item: Shape) -> None:
        self.item = item
        fits = item.fits
        self.fits = lambda v: isinstance(v, list) and all(fits(x) for x in v)

    def problem(self, name, value):
        if not isinstance(value, list):
            return f"{name}: expected a list, got {value!r}"
        return _first_problem(self.item, ((f"{name}[{i}]", item) for i, item in enumerate(value)))

    def json(self):
        return {"type": "array", "items": self.item.json()}


class MapOf(Shape):
    """dict[str, X]: a JSON object (its keys are strings by JSON's own rules)."""

    def __init__(self, value: Shape) -> None:
        self.value = value
        fits = value.fits
        self.fits = lambda v: isinstance(v, dict) and all(fits(x) for x in v.values())

    def problem(self, name, value):
        if not isinstance(value, dict):
            return f"{name}: expected an object, got {value!r}"
        return _first_problem(self.value, ((f"{name}.{key}", item) for key, item in value.items()))

    def json(self):
        return {"type": "object", "additionalProperties": self.value.json()}


class AnyOf(Shape):
    """A union; Optional[X] is AnyOf(X, Null), the common case, and says what X wants."""

    def __init__(self, options: tuple[Shape, ...]) -> None:
        self.options = options
        not_null = [o for o in options if not isinstance(o, Null)]
        if len(options) == 2 and len(not_null) == 1:
            inner = not_null[0].fits
            self.fits = lambda v: v is None or inner(v)
        else:
            fitters = [o.fits for o in options]
            self.fits = lambda v: any(fits(v) for fits in fitters)

    def problem(self, name, value):
        if self.fits(value):
            return None
        not_null = [o for o in self.options if not isinstance(o, Null)]
        if len(not_null) == 1:
            return not_null[0].problem(name, value)
        return f"{name}: {value!r} does not fit {json.dumps(self.json())}"

    def json(self):
        return {"anyOf": [o.json() for o in self.options]}

    def from_text(self, text):
        # A number where a number may stand (float before int, as JSON has one number type).
        for kind in (Number, Integer):
            option = next((o for o in self.options if isinstance(o, kind)), None)
            if option is not None:
                return option.from_text(text)
        return text


_SIMPLE: dict[Any, type[Shape]] = {bool: Boolean, int: Integer, float: Number, str: Text}


@functools.cache
def shape_of(tp: Any) -> Shape:
    """The Shape of a field annotation (cached: records share their few annotations)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return AnyOf(tuple(shape_of(option) for option in typing.get_args(tp)))
    if tp is type(None):
        return Null()
    if origin is Literal:
        return OneOf(typing.get_args(tp))
    if origin is list:
        return ListOf(shape_of(typing.get_args(tp)[0]))
    if origin is dict:
        return MapOf(shape_of(typing.get_args(tp)[1]))
    if tp in _SIMPLE:
        return _SIMPLE[tp]()
    if tp is Any:
        return Anything()
    raise TypeError(f"unsupported annotation {tp!r} (record fields use JSON's types)")
