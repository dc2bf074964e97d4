"""Request bodies of the management API (One API's JSON field names). Fields a client leaves
out stay unset, so an update changes only what it names; unknown fields (One API's console
sends whole records back) are ignored."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, field_validator


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def given(self) -> dict[str, Any]:
        """The fields the client sent, for a proto message with optional fields."""
        return self.model_dump(exclude_unset=True)


class LoginBody(Body):
    username: str
    password: str


class RegisterBody(Body):
    username: str
    password: str
    display_name: str = ""
    email: str = ""


class SelfBody(Body):
    display_name: str | None = None
    email: str | None = None
    password: str | None = None
    original_password: str = ""


class TopUpBody(Body):
    key: str


class UserBody(Body):
    id: int = 0
    username: str | None = None
    password: str | None = None
    display_name: str | None = None
    email: str | None = None
    group: str | None = None
    quota: int | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None


class ManageBody(Body):
    username: str
    action: str


class TokenBody(Body):
    id: int = 0
    user_id: int = 0
    name: str | None = None
    status: int | None = None
    expired_time: int | None = None
    remain_quota: int | None = None
    unlimited_quota: bool | None = None
    models: str | None = None
    subnet: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None


def _json_text(value: object) -> object:
    """One API sends model_mapping as a JSON string; an object is accepted too."""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return value


class ChannelBody(Body):
    id: int = 0
    type: int | None = None
    name: str | None = None
    key: str | None = None
    status: int | None = None
    base_url: str | None = None
    models: str | None = None
    group: str | None = None
    model_mapping: str | None = None
    priority: int | None = None
    weight: int | None = None
    config: str | None = None
    system_prompt: str | None = None
    timeout_ms: int | None = None

    _as_text = field_validator("model_mapping", "config", mode="before")(_json_text)


class RedemptionBody(Body):
    id: int = 0
    name: str | None = None
    quota: int | None = None
    status: int | None = None
    count: int = 1


class OptionBody(Body):
    key: str
    value: Any

    def text(self) -> str:
        """Option values are stored as text; booleans as One API writes them."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return self.value
        return orjson.dumps(self.value).decode()
