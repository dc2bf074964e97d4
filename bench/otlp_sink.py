"""An OTLP/gRPC trace receiver that accepts and counts spans: the collector the benchmarks'
services export to, so that `make bench` runs with tracing on, as in production, without an
OpenTelemetry collector installed.

    .venv/bin/python bench/otlp_sink.py --port 4317 --count-file spans.txt

It answers every ``TraceService.Export`` with success (as a collector with room does) and
writes the number of spans received so far to ``--count-file`` once a second and on exit.
The services' BatchSpanProcessor sends in the background, so what the sink costs is its own
process's CPU, not the request path's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class CountingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans += len(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def serve(port: int, count_file: Path | None) -> None:
    service = CountingTraceService()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def write() -> None:
        if count_file is not None:
            count_file.write_text(f"{service.spans}\n")

    while not stop.is_set():
        write()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    await server.stop(1.0)
    write()


# The production configuration the benchmarks run in: a trace for this share of requests
# (`OTEL_TRACES_SAMPLER_ARG`, decided once at the edge; see docs/architecture.md "Tracing").
PRODUCTION_SAMPLE_RATIO = 0.05


class Sink:
    """The sink as a process of its own, for a benchmark: ``env()`` is what the services
    need to export to it with the given sampling ratio."""

    def __init__(self, port: int, workdir: Path, ratio: float = PRODUCTION_SAMPLE_RATIO) -> None:
        self.port = port
        self.ratio = ratio
        self.count_file = workdir / "otlp-spans.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, __file__, "--port", str(self.port)]
        self.proc = subprocess.Popen([*cmd, "--count-file", str(self.count_file)])
        deadline = time.monotonic() + 15
        while not self.count_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the OTLP sink did not start")
            time.sleep(0.05)

    def env(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_TRACES_SAMPLER_ARG": f"{self.ratio:g}",
        }

    def spans(self) -> int:
        try:
            return int(self.count_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count-file", type=Path, default=None)
    args = p.parse_args()
    asyncio.run(serve(args.port, args.count_file))


if __name__ == "__main__":
    main()
