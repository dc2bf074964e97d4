"""OpenAI tool and response schemas (JSON Schema) cleaned into Gemini's ``Schema``.

Gemini's ``parameters``/``responseSchema`` take a subset of OpenAPI 3.0's Schema object
(https://ai.google.dev/api/caching#Schema): any other field is refused with ``Invalid JSON
payload received. Unknown name "additionalProperties" ... Cannot find field``, ``type`` must be
one name (not a list), ``enum`` is for strings only, formats are limited, and ``required`` may
only name declared properties. JSON Schema that OpenAI accepts is rewritten to that subset
here: ``$ref``s to ``$defs`` are inlined, ``oneOf`` becomes ``anyOf``, ``allOf`` is merged,
``const`` becomes a one-value enum, ``["string", "null"]`` becomes ``nullable``, and fields
Gemini does not know are dropped (LiteLLM and New API do the same cleaning).

What the subset cannot express is refused (:class:`SchemaNotExpressible`, the client's 400)
rather than loosened into a schema that lets the model answer something else: a recursive
schema (a ``$ref`` to a definition being expanded: Gemini's schema has no references), and,
in a response schema, a map (an object whose values are described only by
``additionalProperties``: Gemini's objects have named properties only).
"""

from __future__ import annotations

from typing import Any, Final

_KEPT: Final = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_FORMATS: Final = {
    "string": frozenset({"enum", "date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
_MAX_DEPTH: Final = 24


class SchemaNotExpressible(ValueError):
    """A JSON Schema Gemini's Schema subset cannot express (``where`` locates the part)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


class _Walk:
    """What one cleaning carries down the schema: the definitions, the ``$ref``s being
    expanded on the current path (a repeat is recursion) and whether maps are refused."""

    def __init__(self, defs: dict[str, Any], *, response: bool) -> None:
        self.defs = defs
        self.expanding: list[str] = []
        self.response = response


def clean_schema(schema: Any, *, response: bool = False) -> dict[str, Any]:
    """``schema`` (JSON Schema) as a Gemini ``Schema``; anything that is not an object
    becomes the empty schema. ``response``: it is a ``responseSchema``, where a map is
    refused rather than loosened. Raises :class:`SchemaNotExpressible`."""
    if not isinstance(schema, dict):
        return {}
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _clean(schema, _Walk(defs, response=response), 0, "schema")


def function_parameters(schema: Any) -> dict[str, Any] | None:
    """A function's ``parameters``, or None when it takes none: Gemini refuses an OBJECT
    schema with no properties ("properties: should be non-empty for OBJECT type")."""
    cleaned = clean_schema(schema)
    if not cleaned or (cleaned.get("type") == "object" and not cleaned.get("properties")):
        return None
    return cleaned


def _resolve(schema: dict[str, Any], walk: _Walk, where: str) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    name = ref.rsplit("/", 1)[-1]
    if name in walk.expanding or ref == "#":
        raise SchemaNotExpressible(
            f"Gemini cannot express a recursive schema: `{ref}` at {where} refers to a "
            "definition it is part of.",
            where,
        )
    target = walk.defs.get(name)
    if not isinstance(target, dict):
        return {k: v for k, v in schema.items() if k != "$ref"}
    # Sibling keywords of a $ref (a description, say) apply on top of the target.
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    parts = schema.get("allOf")
    if not isinstance(parts, list):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**(merged.get("properties") or {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*(merged.get("required") or []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _clean(schema: dict[str, Any], walk: _Walk, depth: int, where: str) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise SchemaNotExpressible(
            f"The schema nests deeper than Gemini accepts ({_MAX_DEPTH} levels) at {where}.",
            where,
        )
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved = _resolve(schema, walk, where)
        walk.expanding.append(ref.rsplit("/", 1)[-1])
        try:
            return _clean(resolved, walk, depth + 1, where)
        finally:
            walk.expanding.pop()
    schema = _merge_all_of(schema)
    if isinstance(schema.get("$ref"), str):
        # allOf: [{"$ref": ...}] (how older pydantic wrote a described reference).
        return _clean(schema, walk, depth, where)
    extra = schema.get("additionalProperties")
    if walk.response and isinstance(extra, dict) and extra and not schema.get("properties"):
        raise SchemaNotExpressible(
            f"Gemini's response schema cannot express a map (an object described only by "
            f"`additionalProperties`) at {where}.",
            where,
        )
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str) and k in _TYPES]
        non_null = [k for k in kinds if k != "null"]
        if "null" in kinds and non_null:
            out["nullable"] = True
        if len(non_null) > 1:
            rest = {k: v for k, v in schema.items() if k != "type"}
            out["anyOf"] = [_clean({**rest, "type": k}, walk, depth + 1, where) for k in non_null]
            return out
        kind = non_null[0] if non_null else ("null" if kinds else None)
    if isinstance(kind, str) and kind.lower() in _TYPES:
        out["type"] = kind.lower()
    options = schema.get("anyOf") if "anyOf" in schema else schema.get("oneOf")
    if isinstance(options, list):
        cleaned = [
            _clean(o, walk, depth + 1, f"{where}.anyOf[{i}]")
            for i, o in enumerate(options)
            if isinstance(o, dict)
        ]
        # {"type": "null"} among the options means the value may be null.
        alternatives = [o for o in cleaned if o.get("type") != "null"]
        if len(alternatives) < len(cleaned):
            out["nullable"] = True
        if len(alternatives) == 1 and "type" not in out:
            out.update(alternatives[0])
        elif alternatives:
            out["anyOf"] = alternatives
    for key in ("title", "description", "pattern"):
        if isinstance(schema.get(key), str):
            out[key] = schema[key]
    for key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
        value = schema.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    for key in ("minimum", "maximum"):
        value = schema.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    if schema.get("nullable") is True:
        out["nullable"] = True
    if "const" in schema and isinstance(schema["const"], str):
        out["enum"] = [schema["const"]]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = list(enum)
    if "enum" in out:
        out["type"] = "string"
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    properties = schema.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            str(name): _clean(
                sub if isinstance(sub, dict) else {}, walk, depth + 1, f"{where}.{name}"
            )
            for name, sub in properties.items()
        }
        out.setdefault("type", "object")
        required = schema.get("required")
        if isinstance(required, list):
            names = [r for r in required if isinstance(r, str) and r in out["properties"]]
            if names:
                out["required"] = list(dict.fromkeys(names))
    items = schema.get("items")
    if isinstance(items, list):
        items = items[0] if items else None
    if isinstance(items, dict):
        out["items"] = _clean(items, walk, depth + 1, f"{where}[]")
        out.setdefault("type", "array")
    if out.get("type") == "array" and "items" not in out:
        # Gemini refuses an ARRAY without items ("items: missing field"); JSON Schema's
        # "anything" is closest to a string for a model filling in arguments.
        out["items"] = {"type": "string"}
    return {k: v for k, v in out.items() if k in _KEPT}
