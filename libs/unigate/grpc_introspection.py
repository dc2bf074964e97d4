"""gRPC server reflection and the standard health protocol, so ``grpcurl list`` and
``grpc_health_probe`` (or a Kubernetes gRPC probe) work against a service.

Reflection follows grpc/grpc's ``doc/server-reflection.md``; health is
``grpc.health.v1.Health`` (``doc/health-checking.md``): the overall status ("") and each named
service are SERVING while the server runs, NOT_SERVING once it begins to stop.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


class Introspection:
    """Reflection and health for one server; ``stopping`` flips health before shutdown."""

    def __init__(self, server: grpc.aio.Server, service_names: Iterable[str]) -> None:
        self._names = [*service_names, health.SERVICE_NAME]
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection([*self._names, reflection.SERVICE_NAME], server)

    async def serving(self) -> None:
        for name in ["", *self._names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stopping(self) -> None:
        await self._health.enter_graceful_shutdown()
