"""The bounds of every value the management API takes, as annotated types, so that a
client's out-of-range number, oversize string or NUL byte is a 400 with One API's envelope
(FastAPI's validation) instead of an error deep in protobuf or Postgres (a 500).

Numbers are bounded by the proto field they land in (int64 or int32); strings by what the
column is for, and never contain NUL (PostgreSQL's text cannot hold it). The bounds appear in
``/api/openapi.json``, which the fuzzer (tests/e2e/test_fuzz_api.py) generates from.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
# No NUL anywhere in the string.
NO_NUL = r"^[^\x00]*$"

# Largest lengths, in characters, by what a string is.
NAME_LENGTH = 128  # names of keys, channels, codes; display names; search terms
USERNAME_LENGTH = 64  # usernames (auth: 1 to 64 of [A-Za-z0-9_.@-])
PASSWORD_LENGTH = 1024  # argon2 hashes any length: bound the work
EMAIL_LENGTH = 254  # RFC 5321's limit on a path
URL_LENGTH = 2048
TEXT_LENGTH = 64 * 1024  # lists and documents: models, mappings, config, system prompts, keys

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Username = Annotated[str, Field(max_length=USERNAME_LENGTH, pattern=NO_NUL)]
Password = Annotated[str, Field(max_length=PASSWORD_LENGTH, pattern=NO_NUL)]
Name = Annotated[str, Field(max_length=NAME_LENGTH, pattern=NO_NUL)]
Email = Annotated[str, Field(max_length=EMAIL_LENGTH, pattern=NO_NUL)]
Url = Annotated[str, Field(max_length=URL_LENGTH, pattern=NO_NUL)]
Text = Annotated[str, Field(max_length=TEXT_LENGTH, pattern=NO_NUL)]

# Path and query parameters.
RecordId = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)]
Page = Annotated[int, Query(ge=0, le=INT32_MAX, description="0-based page")]
Size = Annotated[int, Query(ge=0, le=INT32_MAX, description="rows per page; 0: the default")]
Int64Query = Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX)]
Int32Query = Annotated[int, Query(ge=INT32_MIN, le=INT32_MAX)]
TextQuery = Annotated[str, Query(max_length=NAME_LENGTH * 2, pattern=NO_NUL)]
# A key of a multi-key channel, by unigate.keys.key_fingerprint (16 hex digits).
KeyFingerprint = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
