"""TLS when given a certificate and key (HTTP, WebSocket and, when asked or off loopback, the
TCP line protocol), and ``nightrunner serve`` letting go of PHD2 when it stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from runner.clock import ScaledClock
from runner.control.serve import serve_forever
from runner.control.server import ControlPlane
from runner.errors import ConfigError
from runner.guiding import PHD2Simulator
from tests.control.cpkit import EQUIPMENT, LOOPBACK, Served, free_port, serve_rig, wait_for


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nightrunner test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_every_transport_speaks_tls_with_a_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    async with serve_rig(tmp_path, certfile=cert, keyfile=key, tcp_tls=True) as rig:
        assert rig.url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(base_url=rig.url, verify=trust, timeout=30) as h:
            r = await h.post("/rpc", json={"jsonrpc": "2.0", "id": 1,
                                           "method": "get_camera_info"})
            assert r.json()["result"]["framesize"] == [320, 240]
        # the same port does not answer in clear
        async with httpx.AsyncClient(timeout=10) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post(rig.url.replace("https", "http", 1) + "/rpc", json={})
        async with connect(rig.ws_url, ssl=trust, open_timeout=10) as ws:
            assert rig.ws_url.startswith("wss://")
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "status"}))
            assert json.loads(await ws.recv())["result"]["phase"] == "idle"
        hello, reply = await asyncio.to_thread(_tls_line_session, rig, trust)
        assert hello["Event"] == "Connection"
        assert reply["result"] == {"absolute_position": 25000}


def _tls_line_session(rig: Served, trust: ssl.SSLContext) -> tuple[dict[str, object], ...]:
    with socket.create_connection((LOOPBACK, rig.tcp_port), timeout=30) as raw, \
            trust.wrap_socket(raw, server_hostname=LOOPBACK) as s:
        stream = s.makefile("rwb")
        hello = json.loads(stream.readline())
        stream.write(b'{"method": "focuser_get_absolute_position", "id": 1}\n')
        stream.flush()
        return hello, json.loads(stream.readline())


def test_tls_is_refused_with_a_certificate_it_cannot_load(tmp_path: Path) -> None:
    from runner.control.hub import Hub

    (tmp_path / "cert.pem").write_text("not a certificate", encoding="utf-8")
    plane = ControlPlane(Hub(tmp_path), certfile=tmp_path / "cert.pem",
                         keyfile=tmp_path / "cert.pem")
    with pytest.raises(ConfigError, match=r"TLS certificate .*cert\.pem"):
        plane.check()
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        ControlPlane(Hub(tmp_path), certfile=tmp_path / "cert.pem").check()


async def test_serve_closes_its_phd2_connection_when_it_stops(tmp_path: Path) -> None:
    phd2 = PHD2Simulator(clock=ScaledClock(speed=100.0), port=0)
    await phd2.start()
    eq = tmp_path / "eq.yaml"
    eq.write_text(EQUIPMENT + f"guider: {{backend: phd2, host: {LOOPBACK}, port: {phd2.port}, "
                  "pixel_scale: 2.5}\n", encoding="utf-8")
    http = free_port()
    hub = asyncio.create_task(serve_forever(
        eq, tmp_path / "data", f"{LOOPBACK}:{http}", f"{LOOPBACK}:{free_port()}",
        None, None, None, 100.0))
    try:
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{http}", timeout=30) as h:

            async def answers() -> bool:
                try:
                    await h.post("/rpc", json={"jsonrpc": "2.0", "id": 0, "method": "status"})
                except httpx.ConnectError:
                    assert not hub.done(), hub
                    return False
                return True

            await wait_for(answers, what="the hub to serve")
            r = await h.post("/rpc", json={"jsonrpc": "2.0", "id": 1,
                                           "method": "guider.connect_server"})
            assert r.json()["result"] == {"message": None}
        assert phd2.client_count == 1
        os.kill(os.getpid(), signal.SIGTERM)  # as a service manager stops the hub
        assert await asyncio.wait_for(hub, 30) == 0
        await wait_for(lambda: phd2.client_count == 0, what="the hub's PHD2 client to close")
    finally:
        if not hub.done():
            hub.cancel()
        await phd2.stop()


async def test_a_control_plane_that_stops_lets_go_of_the_phd2_it_connected(
        tmp_path: Path) -> None:
    """``nightrunner run``'s control plane as well as ``serve``'s: a PHD2 connection a client
    opened through it is closed when the plane stops (the night's end)."""
    from runner.control.hub import Hub
    from runner.plan.loader import load_equipment

    phd2 = PHD2Simulator(clock=ScaledClock(speed=100.0), port=0)
    await phd2.start()
    try:
        (tmp_path / "eq.yaml").write_text(
            EQUIPMENT + f"guider: {{backend: phd2, host: {LOOPBACK}, port: {phd2.port}, "
            "pixel_scale: 2.5}\n", encoding="utf-8")
        equipment, diags = load_equipment(tmp_path / "eq.yaml")
        assert equipment is not None, [d.format() for d in diags]
        plane = ControlPlane(Hub(tmp_path / "data", equipment=equipment),
                             http=(LOOPBACK, 0), tcp=(LOOPBACK, 0))
        await plane.start()
        async with httpx.AsyncClient(base_url=plane.url() or "", timeout=30) as h:
            r = await h.post("/rpc", json={"jsonrpc": "2.0", "id": 1,
                                           "method": "guider.connect_server"})
            assert r.json()["result"] == {"message": None}, r.json()
        assert phd2.client_count == 1
        await plane.stop()
        await wait_for(lambda: phd2.client_count == 0, what="the PHD2 client to close")
    finally:
        await phd2.stop()
