"""The JSON type the simulator's modules pass around."""

from typing import Any

#: A JSON object: a request body, part of one, or a response body.
JSONObject = dict[str, Any]
