"""Production identities against a real nats-server: mutual TLS and nkey users, from the env.

The CA, the server's and the client's certificates and the nkey are made here, per module.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from workers.runtime.bus import Headers, Service, connect, request
from workers.runtime.credentials import CredentialsError
from workers.runtime.natsserver import NatsServer


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = issuer or (_name(subject), key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass
class Secured:
    server: NatsServer
    dir: Path
    seed_file: Path

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.server.port}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """A server that wants a client certificate from our CA and knows one nkey user."""
    tmp = tmp_path_factory.mktemp("identity")
    ca, ca_key = _issue("relay test CA", None, usage=None)
    _write(tmp / "ca", ca, ca_key)
    for name, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", None)):
        usage = usage or ExtendedKeyUsageOID.CLIENT_AUTH
        cert, key = _issue(f"relay {name}", (ca.subject, ca_key), usage=usage)
        _write(tmp / name, cert, key)
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    seed_file = tmp / "verifier.nk"
    seed_file.write_bytes(seed)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    conf = tmp / "server.conf"
    conf.write_text(
        f"""
tls {{
  cert_file: "{tmp / "server.pem"}"
  key_file: "{tmp / "server.key"}"
  ca_file: "{tmp / "ca.pem"}"
  verify: true
}}
authorization {{
  users = [ {{ nkey: "{public}" }} ]
}}
"""
    )
    server = NatsServer(config_file=conf, jetstream=False)
    server.start_sync()
    try:
        yield Secured(server, tmp, seed_file)
    finally:
        server.cleanup()


@pytest.fixture
def client_tls(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> Secured:
    monkeypatch.setenv("RELAY_NATS_TLS_CA", str(secured.dir / "ca.pem"))
    monkeypatch.setenv("RELAY_NATS_TLS_CERT", str(secured.dir / "client.pem"))
    monkeypatch.setenv("RELAY_NATS_TLS_KEY", str(secured.dir / "client.key"))
    return secured


async def test_an_actor_with_its_nkey_and_a_client_certificate_is_served(
    client_tls: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mTLS plus the nkey seed file named by RELAY_NATS_NKEY_SEED_VERIFIER: a full round trip."""
    monkeypatch.setenv("RELAY_NATS_NKEY_SEED_VERIFIER", str(client_tls.seed_file))
    nc = await connect(client_tls.url, actor="verifier", user="verifier", password="ignored")
    try:

        async def echo(data: bytes, headers: Headers) -> bytes:
            return data

        svc = Service(nc, name="identity-echo", description="test")
        await svc.add_endpoint(name="echo", subject="identity.echo", queue="q", handler=echo)
        await svc.start()
        assert await request(nc, "identity.echo", b"hello", timeout_s=2) == b"hello"
        await svc.stop()
    finally:
        if not nc.is_closed:
            await nc.close()


async def test_a_password_is_not_enough_where_the_server_wants_an_nkey(
    client_tls: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the nkey the server refuses the connection: the first connect fails, bounded."""
    with pytest.raises(ConnectionError):
        await connect(
            client_tls.url, actor="verifier", user="verifier", password="x", initial_timeout_s=3
        )
    assert "authorization violation" in caplog.text.lower()


async def test_without_a_client_certificate_the_tls_handshake_is_refused(
    secured: Secured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Trusting the server is not enough: `verify: true` wants our certificate too."""
    monkeypatch.setenv("RELAY_NATS_TLS_CA", str(secured.dir / "ca.pem"))
    monkeypatch.setenv("RELAY_NATS_NKEY_SEED_VERIFIER", str(secured.seed_file))
    with pytest.raises(ConnectionError):
        await connect(secured.url, actor="verifier", initial_timeout_s=3)
    # The server drops the connection after the handshake: a transport error, not an auth one.
    assert "nats error for actor verifier" in caplog.text
    assert "authorization violation" not in caplog.text.lower()


@pytest.mark.parametrize(
    ("variable", "other"),
    [
        ("RELAY_NATS_NKEY_SEED_VERIFIER", None),
        ("RELAY_NATS_CREDS_VERIFIER", None),
        ("RELAY_NATS_TLS_CA", None),
        ("RELAY_NATS_TLS_CERT", "RELAY_NATS_TLS_KEY"),
    ],
)
async def test_a_missing_identity_file_is_a_clear_error_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, other: str | None
) -> None:
    """A path that is not a file names the variable at once; nothing is sent to any server."""
    monkeypatch.setenv(variable, str(tmp_path / "missing"))
    if other:
        monkeypatch.setenv(other, str(tmp_path / "missing-too"))
    with pytest.raises(CredentialsError, match=variable):
        await connect("nats://127.0.0.1:1", actor="verifier")


async def test_half_a_client_certificate_or_two_identities_are_refused(
    monkeypatch: pytest.MonkeyPatch, secured: Secured
) -> None:
    """A certificate without its key, or both a creds file and a seed, is a configuration error."""
    monkeypatch.setenv("RELAY_NATS_TLS_CERT", str(secured.dir / "client.pem"))
    with pytest.raises(CredentialsError, match="go together"):
        await connect("nats://127.0.0.1:1", actor="verifier")
    monkeypatch.delenv("RELAY_NATS_TLS_CERT")
    monkeypatch.setenv("RELAY_NATS_CREDS_VERIFIER", str(secured.seed_file))
    monkeypatch.setenv("RELAY_NATS_NKEY_SEED_VERIFIER", str(secured.seed_file))
    with pytest.raises(CredentialsError, match="not both"):
        await connect("nats://127.0.0.1:1", actor="verifier")
