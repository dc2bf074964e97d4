"""Names of the Redis keys, NATS subjects and JetStream streams of one deployment.

Everything is prefixed by the namespace (``UNIGATE_NAMESPACE``), so test runs and
deployments sharing one Redis and one NATS never see each other. Services that own hot state
(auth, billing, the admin CLI) also carry the identity of the database they serve
(``install``, read by ``unigate.db.bound_namespace``) in every Redis key, so state loaded from
one database is never read on behalf of another (a recreated or restored one).
"""

from __future__ import annotations

from dataclasses import dataclass

USAGE_SCHEMA_VERSION = 1

# Redis Cluster runs a script, a MULTI or a multi-key command only when all its keys hash to
# one slot (else CROSSSLOT). Everything about one user's money (its keys' balances, their
# reservations, their rate-limit windows) carries the hash tag of the user's key group
# (``{g<user_id % KEY_GROUPS>}``), and each group keeps its own index of open reservations in
# that same slot: one reservation is one slot, and no request touches a key shared by all.
# Groups rather than a tag per user so that billing's sweeper walks a fixed, small number of
# indexes. Changing it moves every such key (a deploy drops the cached state: see README).
KEY_GROUPS = 1024


def key_group(user_id: int) -> int:
    """The hash-tag group of a user's keys."""
    return user_id % KEY_GROUPS


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    # The database's identity (``unigate.db.install_id``); "" for processes without a
    # database (relays), whose keys are shared ones (``unbound``).
    install: str = ""

    @property
    def unbound(self) -> Namespace:
        """The same namespace without the database's identity: for the few keys written by
        processes that have no database (channel health, written by relays), which hold
        observations that heal on their own rather than balances."""
        return Namespace(self.name)

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
    def content_subject(self) -> str:
        """Content logging's bodies (core NATS, best effort: never the usage stream)."""
        return f"{self.name}.content.v1"

    @property
    def billing_consumer(self) -> str:
        return "billing"

    @property
    def config_subject(self) -> str:
        """Broadcast of config changes (keys, users, channels, options)."""
        return f"{self.name}.config.changed"

    # --- Redis ---
    def redis_key(self, *parts: str | int) -> str:
        """The one place Redis keys are built: ``<namespace>[:<install>]:<parts>``."""
        prefix = [self.name, self.install] if self.install else [self.name]
        return ":".join([*prefix, *map(str, parts)])

    def group_key(self, group: int, *parts: str | int) -> str:
        """A key in hash-tag group ``group``: ``<namespace>[:<install>]:{g<group>}:<parts>``.
        Only the text in braces is hashed, so every key of a group is in one slot whatever
        the namespace and install."""
        return self.redis_key(f"{{g{group}}}", *parts)

    def user_key(self, user_id: int, *parts: str | int) -> str:
        """A key about user ``user_id`` (or one of its API keys), in the user's group."""
        return self.group_key(key_group(user_id), *parts)
