"""Request bodies of the management API (One API's JSON field names). Fields a client leaves
out stay unset, so an update changes only what it names; unknown fields (One API's console
sends whole records back) are ignored. Every field is bounded (management/limits.py)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, field_validator

from unigate_gateway.management.limits import (
    TEXT_LENGTH,
    Email,
    Int32,
    Int64,
    Name,
    Password,
    Text,
    Url,
    Username,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def given(self) -> dict[str, Any]:
        """The fields the client sent, for a proto message with optional fields."""
        return self.model_dump(exclude_unset=True)


class LoginBody(Body):
    username: Username
    password: Password


class RegisterBody(Body):
    username: Username
    password: Password
    display_name: Name = ""
    email: Email = ""
    # The mailed code (while EmailVerificationEnabled) and the inviter's code, as One API.
    verification_code: Name = ""
    aff_code: Name = ""


class ResetBody(Body):
    email: Email
    token: Name


class AdminTopUpBody(Body):
    """One API's ``POST /api/topup``."""

    user_id: Int64
    quota: Int64
    remark: Name = ""


class SelfBody(Body):
    display_name: Name | None = None
    email: Email | None = None
    password: Password | None = None
    original_password: Password = ""


class TopUpBody(Body):
    key: Name


class UserBody(Body):
    id: Int64 = 0
    username: Username | None = None
    password: Password | None = None
    display_name: Name | None = None
    email: Email | None = None
    group: Name | None = None
    quota: Int64 | None = None
    rpm_limit: Int32 | None = None
    tpm_limit: Int32 | None = None


class ManageBody(Body):
    username: Username
    action: Name


class TokenBody(Body):
    id: Int64 = 0
    user_id: Int64 = 0
    name: Name | None = None
    status: Int32 | None = None
    expired_time: Int64 | None = None
    remain_quota: Int64 | None = None
    unlimited_quota: bool | None = None
    models: Text | None = None
    subnet: Text | None = None
    rpm_limit: Int32 | None = None
    tpm_limit: Int32 | None = None


def _json_text(value: object) -> object:
    """One API sends model_mapping as a JSON string; an object is accepted too."""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return value


class ChannelBody(Body):
    id: Int64 = 0
    type: Int32 | None = None
    name: Name | None = None
    key: Text | None = None
    status: Int32 | None = None
    base_url: Url | None = None
    models: Text | None = None
    group: Text | None = None
    model_mapping: Text | None = None
    priority: Int64 | None = None
    weight: Int32 | None = None
    config: Text | None = None
    system_prompt: Text | None = None
    timeout_ms: Int32 | None = None

    _as_text = field_validator("model_mapping", "config", mode="before")(_json_text)


class RedemptionBody(Body):
    id: Int64 = 0
    name: Name | None = None
    quota: Int64 | None = None
    status: Int32 | None = None
    count: Int32 = 1


class OptionBody(Body):
    key: Name
    value: Any

    @field_validator("value")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        try:
            text = _option_text(value)
        except TypeError:  # orjson: an integer beyond 64 bits
            raise ValueError("an option value must be storable as JSON text") from None
        if len(text) > TEXT_LENGTH or "\x00" in text:
            raise ValueError(f"an option value is at most {TEXT_LENGTH} characters, without NUL")
        return value

    def text(self) -> str:
        return _option_text(self.value)


def _option_text(value: Any) -> str:
    """Option values are stored as text; booleans as One API writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
