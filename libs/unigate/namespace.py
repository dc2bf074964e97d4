"""Names of the Redis keys, NATS subjects and JetStream streams of one deployment.

Everything is prefixed by the namespace (``UNIGATE_NAMESPACE``), so test runs and
deployments sharing one Redis and one NATS never see each other.
"""

from __future__ import annotations

from dataclasses import dataclass

USAGE_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str

    # --- NATS ---
    @property
    def usage_stream(self) -> str:
        return f"{self.name.upper()}_USAGE"

    @property
    def usage_subject(self) -> str:
        return f"{self.name}.usage.v{USAGE_SCHEMA_VERSION}"

    @property
    def usage_subjects(self) -> str:
        return f"{self.name}.usage.>"

    @property
    def billing_consumer(self) -> str:
        return "billing"

    @property
    def config_subject(self) -> str:
        """Broadcast of config changes (keys, users, channels, options)."""
        return f"{self.name}.config.changed"

    # --- Redis ---
    def redis_key(self, *parts: str | int) -> str:
        return ":".join([self.name, *map(str, parts)])
