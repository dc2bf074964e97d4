"""Validation of a ``GenerateContentRequest`` the way the Gemini API and Vertex AI refuse one.

Rules (https://ai.google.dev/api/generate-content, https://ai.google.dev/api/caching#Schema,
https://ai.google.dev/gemini-api/docs/function-calling, and the messages Google returns):

* only the request's known fields; in function schemas only the fields of Gemini's
  ``Schema`` (``additionalProperties``, ``$schema``, ``const``, ... are "Unknown name ...
  Cannot find field"), ``type`` one name, not a list ("Proto field is not repeating"),
  ``enum`` on strings, ARRAY with ``items``, ``required`` naming declared properties, an
  OBJECT ``parameters`` with properties;
* ``contents`` present; roles ``user`` or ``model``; every content with parts, every part
  with exactly one kind of data, text not empty; inline data base64 with a MIME type;
* function calls and responses paired: a ``functionResponse`` turn follows a
  ``functionCall`` turn with as many parts; a ``functionCall`` turn follows a user turn or a
  function response turn;
* ``generationConfig`` values in range; ``toolConfig`` names declared functions.

JSON keys are accepted in camelCase only (Google also parses snake_case; unigate never
sends it).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from unigate_sim.gemini.errors import GoogleError, invalid, unknown_field

_REQUEST_FIELDS: Final = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
        "labels",
    }
)
_PART_DATA: Final = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_PART_FIELDS: Final = frozenset({*_PART_DATA, "thought", "thoughtSignature"})
_SCHEMA_FIELDS: Final = frozenset(
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
_TYPES: Final = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_FORMATS: Final = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_GENERATION_FIELDS: Final = frozenset(
    {
        "temperature",
        "topP",
        "topK",
        "candidateCount",
        "maxOutputTokens",
        "stopSequences",
        "presencePenalty",
        "frequencyPenalty",
        "seed",
        "responseMimeType",
        "responseSchema",
        "thinkingConfig",
        "responseLogprobs",
        "logprobs",
    }
)
_MIME_TYPES: Final = frozenset({"text/plain", "application/json", "text/x.enum"})
_FUNCTION_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(
            f"Invalid value at '{where}', Starting an object on a scalar field"
            if not isinstance(value, list)
            else f"Invalid JSON payload received. Unknown name \"\" at '{where}': Proto field "
            "is not repeating, cannot start list."
        )
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"Invalid value at '{where}', expected a list.")
    return value


def _known(obj: dict[str, Any], fields: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in fields:
            raise unknown_field(name, where)


def check_schema(schema: Any, where: str, *, top: bool = False) -> None:
    """A Gemini ``Schema`` (function parameters, responseSchema)."""
    schema = _object(schema, where)
    _known(schema, _SCHEMA_FIELDS, where)
    kind = schema.get("type")
    if isinstance(kind, list):
        raise invalid(
            f"Invalid JSON payload received. Unknown name \"type\" at '{where}': Proto field is "
            "not repeating, cannot start list."
        )
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in _TYPES):
        raise invalid(
            f"Invalid value at '{where}.type' (type.googleapis.com/google.ai."
            f'generativelanguage.v1beta.Type), "{kind}"'
        )
    upper = kind.upper() if isinstance(kind, str) else ""
    enum = schema.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not all(isinstance(v, str) for v in enum):
            raise invalid(f"Invalid value at '{where}.enum', expected a list of strings.")
        if upper != "STRING":
            raise invalid(f"* {where}.enum: only allowed for STRING type")
    fmt = schema.get("format")
    if fmt is not None and fmt not in _FORMATS.get(upper, frozenset()):
        raise invalid(
            f"* {where}.format: only 'enum' and 'date-time' are supported for STRING type"
        )
    properties = schema.get("properties")
    if properties is not None:
        for name, sub in _object(properties, f"{where}.properties").items():
            check_schema(sub, f"{where}.properties[{name}].value")
    if upper == "OBJECT" and top and not properties:
        raise invalid(f"* {where}.properties: should be non-empty for OBJECT type")
    required = schema.get("required")
    if required is not None:
        for i, name in enumerate(_list(required, f"{where}.required")):
            if not isinstance(properties, dict) or name not in properties:
                raise invalid(f"* {where}.required[{i}]: property is not defined")
    if upper == "ARRAY" and "items" not in schema:
        raise invalid(f"* {where}.items: missing field.")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    for i, option in enumerate(_list(schema.get("anyOf", []), f"{where}.any_of")):
        check_schema(option, f"{where}.any_of[{i}]")


def _check_part(part: Any, where: str) -> str:
    part = _object(part, where)
    _known(part, _PART_FIELDS, where)
    kinds = [k for k in _PART_DATA if k in part]
    if not kinds or (kinds == ["text"] and part["text"] == ""):
        raise invalid(
            f"* {where}.data: required oneof field 'data' must have one initialized field"
        )
    if len(kinds) > 1:
        raise invalid(
            f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. Cannot set "
            f"'{kinds[1]}'"
        )
    kind = kinds[0]
    if kind == "text" and not isinstance(part["text"], str):
        raise invalid(f"Invalid value at '{where}.text' (TYPE_STRING)")
    if kind == "inlineData":
        blob = _object(part["inlineData"], f"{where}.inline_data")
        _known(blob, frozenset({"mimeType", "data"}), f"{where}.inline_data")
        if not blob.get("mimeType"):
            raise invalid(f"* {where}.inline_data.mime_type: required field is not set")
        try:
            base64.b64decode(str(blob.get("data") or ""), validate=True)
        except binascii.Error:
            raise invalid(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
            ) from None
        if not blob.get("data"):
            raise invalid(f"* {where}.inline_data.data: required field is not set")
    if kind == "fileData":
        file = _object(part["fileData"], f"{where}.file_data")
        _known(file, frozenset({"mimeType", "fileUri"}), f"{where}.file_data")
        if not isinstance(file.get("fileUri"), str) or not file["fileUri"]:
            raise invalid(f"* {where}.file_data.file_uri: required field is not set")
    if kind == "functionCall":
        call = _object(part["functionCall"], f"{where}.function_call")
        _known(call, frozenset({"name", "args", "id"}), f"{where}.function_call")
        if not call.get("name"):
            raise invalid(f"* {where}.function_call.name: Name cannot be empty.")
        _object(call.get("args", {}), f"{where}.function_call.args")
    if kind == "functionResponse":
        response = _object(part["functionResponse"], f"{where}.function_response")
        _known(response, frozenset({"name", "response", "id"}), f"{where}.function_response")
        if not response.get("name"):
            raise invalid(f"* {where}.function_response.name: Name cannot be empty.")
        _object(response.get("response"), f"{where}.function_response.response")
    return kind


def _check_contents(contents: Any) -> None:
    contents = _list(contents, "contents")
    if not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    previous: tuple[str, list[str]] | None = None
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        content = _object(content, where)
        _known(content, frozenset({"role", "parts"}), where)
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise invalid("Please use a valid role: user, model.")
        parts = _list(content.get("parts", []), f"{where}.parts")
        if not parts:
            raise invalid(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            )
        kinds = [_check_part(p, f"{where}.parts[{j}]") for j, p in enumerate(parts)]
        responses = kinds.count("functionResponse")
        calls = kinds.count("functionCall")
        if responses:
            if previous is None or previous[0] != "model" or "functionCall" not in previous[1]:
                raise invalid(
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if responses != previous[1].count("functionCall"):
                raise invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
        if calls and (previous is None or previous[0] == "model"):
            raise invalid(
                "Please ensure that function call turn comes immediately after a user turn or "
                "after a function response turn."
            )
        previous = (role, kinds)


def declared_functions(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The function declarations of a validated request, in order."""
    return [
        declaration
        for tool in request.get("tools") or []
        for declaration in tool.get("functionDeclarations") or []
    ]


def _check_tools(request: dict[str, Any]) -> None:
    names: list[str] = []
    for i, tool in enumerate(_list(request.get("tools", []), "tools")):
        tool = _object(tool, f"tools[{i}]")
        _known(
            tool,
            frozenset({"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}),
            f"tools[{i}]",
        )
        for j, fn in enumerate(_list(tool.get("functionDeclarations", []), f"tools[{i}]")):
            where = f"tools[{i}].function_declarations[{j}]"
            fn = _object(fn, where)
            _known(fn, frozenset({"name", "description", "parameters", "response"}), where)
            name = fn.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                raise invalid(
                    f"* GenerateContentRequest.{where}.name: Invalid function name. Must start "
                    "with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain "
                    "underscores, dots, colons and dashes, with a maximum length of 64."
                )
            if "parameters" in fn:
                check_schema(fn["parameters"], f"{where}.parameters", top=True)
            names.append(name)
    if "toolConfig" in request:
        config = _object(request["toolConfig"], "tool_config")
        _known(config, frozenset({"functionCallingConfig"}), "tool_config")
        calling = _object(
            config.get("functionCallingConfig", {}), "tool_config.function_calling_config"
        )
        _known(
            calling,
            frozenset({"mode", "allowedFunctionNames"}),
            "tool_config.function_calling_config",
        )
        mode = calling.get("mode", "AUTO")
        if mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            raise invalid(
                f"Invalid value at 'tool_config.function_calling_config.mode', \"{mode}\""
            )
        allowed = calling.get("allowedFunctionNames")
        if allowed is not None:
            if mode != "ANY":
                raise invalid(
                    "* GenerateContentRequest.tool_config.function_calling_config.allowed_function"
                    "_names: only allowed when mode is ANY"
                )
            for name in _list(allowed, "allowed_function_names"):
                if name not in names:
                    raise invalid(
                        "* GenerateContentRequest.tool_config.function_calling_config.allowed_"
                        f"function_names: function {name} is not declared"
                    )


def _check_generation(config: Any) -> None:
    config = _object(config, "generation_config")
    _known(config, _GENERATION_FIELDS, "generation_config")

    def number(name: str, low: float, high: float) -> None:
        value = config.get(name)
        if value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise invalid(
                f"* GenerateContentRequest.generation_config.{name}: must be in [{low}, {high}]"
            )

    number("temperature", 0.0, 2.0)
    number("topP", 0.0, 1.0)
    number("presencePenalty", -2.0, 2.0)
    number("frequencyPenalty", -2.0, 2.0)
    number("candidateCount", 1, 8)
    number("maxOutputTokens", 1, 65536)
    stops = config.get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise invalid("* GenerateContentRequest.generation_config.stop_sequences: at most 5")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        raise invalid(
            f"* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes "
            f"are `text/plain`, `application/json`, and `text/x.enum`. Got {mime}"
        )
    if "responseSchema" in config:
        if mime not in ("application/json", "text/x.enum"):
            raise invalid(
                "* GenerateContentRequest.generation_config.response_schema: response_mime_type "
                "must be application/json or text/x.enum when response_schema is set"
            )
        check_schema(config["responseSchema"], "generation_config.response_schema")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        thinking = _object(thinking, "generation_config.thinking_config")
        _known(
            thinking,
            frozenset({"thinkingBudget", "includeThoughts", "thinkingLevel"}),
            "generation_config.thinking_config",
        )


def check_request(body: Any) -> dict[str, Any]:
    """``body`` if it is a valid ``GenerateContentRequest``; raises :class:`GoogleError`."""
    request = _object(body, "")
    _known(request, _REQUEST_FIELDS, "")
    if "contents" not in request:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    _check_contents(request["contents"])
    if "systemInstruction" in request:
        system = _object(request["systemInstruction"], "system_instruction")
        _known(system, frozenset({"role", "parts"}), "system_instruction")
        parts = _list(system.get("parts", []), "system_instruction.parts")
        kinds = [_check_part(p, f"system_instruction.parts[{i}]") for i, p in enumerate(parts)]
        if any(k != "text" for k in kinds):
            raise invalid(
                "* GenerateContentRequest.system_instruction: only text parts are allowed"
            )
    _check_tools(request)
    if "generationConfig" in request:
        _check_generation(request["generationConfig"])
    return request


__all__ = ["GoogleError", "check_request", "check_schema", "declared_functions"]
