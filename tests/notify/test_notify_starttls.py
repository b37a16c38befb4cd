"""E-mail with ``starttls: true``: the connection is upgraded before the login (the server
refuses a login in the clear), the server's certificate is verified against the system's
trust store (here a CA made by the test, named by ``SSL_CERT_FILE``), and a server whose
certificate is not trusted gets no password and no mail."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runner.notify.channels import DeliveryError, send_email
from runner.plan.models import NotifyEmail
from tests.notify.test_notify_email import PASSWORD, Inbox, _free_port

PAYLOAD = {"kind": "finish", "plan": "test plan", "message": "night ended: completed"}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(hours=1))
         .not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    """A local SMTP server offering STARTTLS with a certificate from a CA of the test's own
    (its PEM at the returned path); it refuses AUTH before the upgrade."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Nightrunner test CA", ca_key, "Nightrunner test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("127.0.0.1", key, "Nightrunner test CA", ca_key, ca=False)
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    (tmp_path / "server.pem").write_bytes(_pem(leaf) + _pem(ca))
    (tmp_path / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    inbox = Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                     tls_context=server_ctx, require_starttls=True, auth_require_tls=True)
    ctl.start()
    yield inbox, port, tmp_path / "ca.pem"
    ctl.stop()


def _mail(port: int, *, starttls: bool) -> NotifyEmail:
    return NotifyEmail.model_validate({
        "host": "127.0.0.1", "port": port, "from": "nightrunner@example.org",
        "to": ["astro@example.org"], "starttls": starttls, "username": "astro",
        "password_env": "NR_SMTP_PASSWORD"})


def test_starttls_upgrades_verifies_the_server_and_then_logs_in(
        tls_smtp: tuple[Inbox, int, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port, ca = tls_smtp
    monkeypatch.setenv("NR_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the system trust store, for this test
    send_email(_mail(port, starttls=True), PAYLOAD, timeout=10)
    assert inbox.logins == [(b"astro", PASSWORD.encode())]
    [mail] = inbox.mails
    assert mail["Subject"] == "Nightrunner: test plan: night ended: completed"


def test_without_starttls_such_a_server_gets_no_login_and_no_mail(
        tls_smtp: tuple[Inbox, int, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port, ca = tls_smtp
    monkeypatch.setenv("NR_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with pytest.raises(DeliveryError):
        send_email(_mail(port, starttls=False), PAYLOAD, timeout=10)
    assert inbox.logins == [] and inbox.mails == []


def test_a_server_whose_certificate_is_not_trusted_gets_no_password(
        tls_smtp: tuple[Inbox, int, Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    inbox, port, _ = tls_smtp
    monkeypatch.setenv("NR_SMTP_PASSWORD", PASSWORD)
    other = tmp_path / "other-ca.pem"  # a trust store without the test's CA
    other_key = ec.generate_private_key(ec.SECP256R1())
    other.write_bytes(_pem(_cert("Someone else", other_key, "Someone else", other_key, ca=True)))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        send_email(_mail(port, starttls=True), PAYLOAD, timeout=10)
    assert inbox.logins == [] and inbox.mails == []
