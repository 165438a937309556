"""Declare a JSON shape once, as a dataclass, and get from it both the JSON and its OpenAPI 3.0 schema.

A declaration is a dataclass whose fields are the JSON keys, in the order they are written. Types map to
schemas: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]`` (an enum), ``X | None`` (nullable),
``list[X]``, ``tuple[X, X]`` (an array of that length), ``dict[str, X]`` and plain ``dict`` (objects), and
another dataclass (a ``$ref`` to its own component). The class docstring is the component's description;
``prop`` adds a field's description and any other schema keywords (``minimum``, ``default``, ``format``...).

A keyword may be a function of a *context* (the service's limits), so a bound such as the largest
``max_frames`` is stated once and read from the running app's config when the document is built.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

PRIMITIVES = {bool: "boolean", int: "integer", float: "number", str: "string"}


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


# Left out of the JSON altogether, which is not the same as null (e.g. a video's fps may be null, a folder
# has no fps at all).
ABSENT: Any = _Absent()


def prop(description: str = "", *, optional: bool = False, **keywords) -> Any:
    """A declared field. ``optional`` fields default to ``ABSENT`` and are not required; ``keywords`` are
    OpenAPI schema keywords (``default`` here is the documented default, never the dataclass default)."""
    metadata = {"description": description, "keywords": keywords}
    if optional:
        return dataclasses.field(default=ABSENT, metadata=metadata)
    return dataclasses.field(metadata=metadata)


def keywords(field: dataclasses.Field, context=None) -> dict:
    """A field's schema keywords with those that depend on the context worked out."""
    given = field.metadata.get("keywords", {})
    return {key: value(context) if callable(value) else value for key, value in given.items()}


def to_json(value):
    """A declaration instance as plain JSON values, keys in declaration order, ``ABSENT`` fields left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        json = {}
        for name in _field_names(type(value)):
            item = getattr(value, name)
            if item is not ABSENT:
                json[name] = to_json(item)
        return json
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    # A timeline holds thousands of declarations: look each class's fields up once.
    return tuple(field.name for field in dataclasses.fields(cls))


class Components:
    """The named schemas of one OpenAPI document: ``ref(cls)`` adds a declaration, and every declaration it
    uses, once each, under the class name."""

    def __init__(self, context=None) -> None:
        self.context = context
        self.schemas: dict[str, dict] = {}

    def ref(self, cls: type) -> dict:
        name = cls.__name__
        if name not in self.schemas:
            self.schemas[name] = {}      # reserved first, so a declaration that refers to itself ends
            self.schemas[name] = self.object(cls)
        return {"$ref": f"#/components/schemas/{name}"}

    def object(self, cls: type) -> dict:
        # Type hints are read at each call, not cached, so the document always follows the declarations.
        hints = get_type_hints(cls)
        fields = dataclasses.fields(cls)
        schema: dict = {"type": "object"}
        description = _description(cls)
        if description:
            schema["description"] = description
        required = [field.name for field in fields if field.default is not ABSENT]
        if required:
            schema["required"] = required
        schema["properties"] = {field.name: self.field(field, hints[field.name]) for field in fields}
        return schema

    def field(self, field: dataclasses.Field, annotation) -> dict:
        schema = self.schema(annotation)
        extra = keywords(field, self.context)
        if field.metadata.get("description"):
            extra["description"] = field.metadata["description"]
        if "$ref" in schema and extra:
            # OpenAPI 3.0 ignores whatever sits beside a $ref; allOf keeps the field's own words.
            return {"allOf": [schema], **extra}
        return {**schema, **extra}

    def schema(self, annotation) -> dict:
        origin, args = get_origin(annotation), get_args(annotation)
        if annotation in PRIMITIVES:
            return {"type": PRIMITIVES[annotation]}
        if annotation is dict:
            return {"type": "object"}
        if dataclasses.is_dataclass(annotation):
            return self.ref(annotation)
        if origin is Literal:
            return {"type": PRIMITIVES[type(args[0])], "enum": list(args)}
        if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            inner = self.schema(next(arg for arg in args if arg is not type(None)))
            if "$ref" in inner:
                raise TypeError(f"{annotation}: OpenAPI 3.0 cannot make a $ref nullable")
            return {**inner, "nullable": True}
        if origin is list:
            return {"type": "array", "items": self.schema(args[0])}
        if origin is tuple and Ellipsis not in args and len(set(args)) == 1:
            return {"type": "array", "items": self.schema(args[0]), "minItems": len(args), "maxItems": len(args)}
        if origin is dict and args[0] is str:
            return {"type": "object", "additionalProperties": self.schema(args[1])}
        raise TypeError(f"no OpenAPI schema for {annotation!r}")


def _description(cls: type) -> str:
    # A dataclass without a docstring gets its signature as one; that is no description.
    doc = cls.__doc__ or ""
    return "" if doc.startswith(f"{cls.__name__}(") else " ".join(doc.split())
