"""The internal CA (``unigate certs``), the settings that find the files, and rotation: a
running server takes new certificates and trust roots from its files at the next handshake,
over real TLS connections on a real port."""

from __future__ import annotations

import logging
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from unigate import certs
from unigate.certs import TlsFiles
from unigate.grpcutil import client_channel, listen, new_server
from unigate.reloading_channel import ReloadingChannel
from unigate.settings import CommonSettings
from unigate_cli.cli import main as cli_main


def _sans(path: Path) -> tuple[list[str], list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(i) for i in ext.get_values_for_type(x509.IPAddress)]
    return (
        ext.get_values_for_type(x509.UniformResourceIdentifier),
        ext.get_values_for_type(x509.DNSName),
        ips,
    )


def test_unigate_certs_makes_a_ca_and_one_certificate_per_identity(tmp_path: Path) -> None:
    cli_main(["certs", "--out", str(tmp_path), "--hostname", "auth.unigate.svc,10.1.2.3"])
    ca_pem = (tmp_path / "ca.pem").read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    for identity in certs.IDENTITIES:
        files = TlsFiles.in_dir(tmp_path, identity)
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        uris, dns, ips = _sans(files.cert)
        assert uris == [f"spiffe://unigate/{identity}"]
        assert {identity, "localhost", "auth.unigate.svc"} <= set(dns)
        assert {"127.0.0.1", "::1", "10.1.2.3"} <= set(ips)
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        assert certs.key_matches(files.cert.read_bytes(), files.key.read_bytes())
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600
    # Again: new certificates from the same CA (rotation of the leaves).
    before = (tmp_path / "relay.pem").read_bytes()
    cli_main(["certs", "--out", str(tmp_path), "--identity", "relay"])
    assert (tmp_path / "ca.pem").read_bytes() == ca_pem
    after = (tmp_path / "relay.pem").read_bytes()
    assert after != before
    x509.load_pem_x509_certificate(after).verify_directly_issued_by(ca)
    # A new CA: the old one stays trusted, second in the bundle, while processes are rolled.
    cli_main(["certs", "--out", str(tmp_path), "--new-ca"])
    bundle = x509.load_pem_x509_certificates((tmp_path / "ca.pem").read_bytes())
    assert len(bundle) == 2 and bundle[1] == ca
    x509.load_pem_x509_certificate((tmp_path / "auth.pem").read_bytes()).verify_directly_issued_by(
        bundle[0]
    )
    # The end of the CA rotation: the old CA is trusted no more.
    cli_main(["certs", "--out", str(tmp_path), "--drop-old-ca"])
    assert x509.load_pem_x509_certificates((tmp_path / "ca.pem").read_bytes()) == bundle[:1]


def test_settings_find_the_files_or_say_how_to_make_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("INTERNAL_TLS", "TLS_DIR", "TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="unigate certs"):
        CommonSettings().tls_files("auth")
    certs.write_certificates(tmp_path)
    monkeypatch.setenv("TLS_DIR", str(tmp_path))
    assert CommonSettings().tls_files("auth") == TlsFiles.in_dir(tmp_path, "auth")
    # A file named on its own wins over the directory.
    monkeypatch.setenv("TLS_CERT_FILE", str(tmp_path / "relay.pem"))
    assert CommonSettings().tls_files("auth") == TlsFiles(
        tmp_path / "ca.pem", tmp_path / "relay.pem", tmp_path / "auth-key.pem"
    )
    monkeypatch.setenv("INTERNAL_TLS", "off")
    with caplog.at_level(logging.WARNING):
        assert CommonSettings().tls_files("auth") is None
    assert "PLAINTEXT and UNAUTHENTICATED" in caplog.text


class HealthServer:
    """A grpc.aio server as the services make it (identity check, reloading credentials)."""

    def __init__(self, files: TlsFiles) -> None:
        self.server = new_server(files)
        self.servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        self.port = listen(self.server, "127.0.0.1:0", files)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[HealthServer, Path]]:
    live = tmp_path / "live"
    certs.write_certificates(live)
    running = HealthServer(TlsFiles.in_dir(live, "auth"))
    await running.server.start()
    yield running, live
    await running.server.stop(None)


async def _check(port: int, files: TlsFiles) -> grpc.StatusCode:
    # A new channel each time: a new connection, so a new handshake.
    channel = client_channel(f"127.0.0.1:{port}", files, "auth")
    try:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    finally:
        await channel.close()
    return grpc.StatusCode.OK


def _copy(src: Path, dst: Path, *names: str) -> None:
    for name in names:
        tmp = dst / f".{name}.new"
        shutil.copyfile(src / name, tmp)
        tmp.replace(dst / name)


async def test_a_running_server_rotates_to_new_files_at_the_next_handshake(
    served: tuple[HealthServer, Path], tmp_path: Path
) -> None:
    running, live = served
    old = tmp_path / "old"
    shutil.copytree(live, old)
    new = tmp_path / "new"
    certs.write_certificates(new)  # another CA altogether
    assert await _check(running.port, TlsFiles.in_dir(old, "gateway")) == grpc.StatusCode.OK
    assert (
        await _check(running.port, TlsFiles.in_dir(new, "gateway")) == grpc.StatusCode.UNAVAILABLE
    )

    # Mid-rotation: the new key is there, its certificate not yet. The server keeps its pair.
    _copy(new, live, "auth-key.pem")
    assert await _check(running.port, TlsFiles.in_dir(old, "gateway")) == grpc.StatusCode.OK

    _copy(new, live, "auth.pem", "ca.pem")
    # Now it presents the new CA's certificate and trusts only the new CA.
    assert await _check(running.port, TlsFiles.in_dir(new, "gateway")) == grpc.StatusCode.OK
    assert (
        await _check(running.port, TlsFiles.in_dir(old, "gateway")) == grpc.StatusCode.UNAVAILABLE
    )


async def test_the_client_checks_which_service_it_reached(
    served: tuple[HealthServer, Path],
) -> None:
    running, live = served
    gateway = TlsFiles.in_dir(live, "gateway")
    assert await _check(running.port, gateway) == grpc.StatusCode.OK
    # The server is auth; a client that dialled it as the relay refuses its certificate.
    channel = client_channel(f"127.0.0.1:{running.port}", gateway, "relay")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()


async def test_a_client_channel_follows_its_rotated_files(
    served: tuple[HealthServer, Path], tmp_path: Path
) -> None:
    """The server and its clients move to a new CA; a client's long-lived channel takes its
    new files at its next call (no restart), over a new connection, and calls keep working."""
    running, live = served
    client = tmp_path / "client"
    shutil.copytree(live, client)
    old_client = tmp_path / "old-client"
    shutil.copytree(live, old_client)
    files = TlsFiles.in_dir(client, "gateway")
    channel = client_channel(f"127.0.0.1:{running.port}", files, "auth", recheck_files_every=0.0)
    assert isinstance(channel, ReloadingChannel)
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert channel.generation == 0
        new = tmp_path / "new"
        certs.write_certificates(new)
        # The server first trusts both CAs (the bundle `unigate certs --new-ca` writes) and
        # presents the new CA's certificate ...
        both = (new / "ca.pem").read_bytes() + (live / "ca.pem").read_bytes()
        (live / "ca.pem.new").write_bytes(both)
        (live / "ca.pem.new").replace(live / "ca.pem")
        _copy(new, live, "auth-key.pem", "auth.pem")
        # ... the client moves to the new CA's files, its trust included ...
        _copy(new, client, "gateway-key.pem", "gateway.pem", "ca.pem")
        # ... and its next call goes over a new connection made from them.
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert channel.generation == 1
        # The server drops the old CA: the channel still works, old files no longer do.
        _copy(new, live, "ca.pem")
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        old_files = TlsFiles.in_dir(old_client, "gateway")
        assert await _check(running.port, old_files) == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
