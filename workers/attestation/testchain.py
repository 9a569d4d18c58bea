"""A test chain mirroring the real Nitro PKI, minting signed documents with any PCRs and user_data.

Generated vectors, not AWS ones: root (no pathLen) -> regional (pathLen 2) -> zonal (pathLen 1)
-> instance (pathLen 0, no digitalSignature) -> leaf (CA:false, digitalSignature, 3 h + 3 s), all
P-384 / ECDSA-SHA384, cabundle = [root, regional, zonal, instance], all nine payload keys with
null for absent optionals, raw r||s signatures. The CA keys and the default leaf are made once
per TestChain (NSM reuses its leaf for hours too), so minting a document costs one ECDSA signature
plus CBOR encoding: well under a millisecond.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from workers.attestation.document import signature_structure
from workers.attestation.measurements import PcrSet

LEAF_LIFETIME = dt.timedelta(hours=3, seconds=3)
_SHA384 = hashes.SHA384()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Amazon"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca: bool,
    path_length: int | None,
    digital_signature: bool,
) -> x509.Certificate:
    """One certificate shaped like Nitro's: critical basicConstraints and keyUsage, ECDSA-SHA384."""
    name = _name(subject)
    issuer_name, issuer_key = issuer if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, _SHA384)


def fake_pcrs(label: str = "fake") -> dict[int, bytes]:
    """PCR0..2 as SHA-384 of `<label>-pcr-<i>` (upstream's fake attestor uses "fake")."""
    return {i: hashlib.sha384(f"{label}-pcr-{i}".encode()).digest() for i in range(3)}


@dataclass
class TestChain:
    """Five-level CA chain; `document(...)` mints a signed attestation document."""

    __test__ = False  # not a pytest class

    valid_from: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )

    def __post_init__(self) -> None:
        start = self.valid_from
        self._keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(4)]
        names = [
            "test.nitro-enclaves",
            "regional.test.nitro-enclaves",
            "zonal.test.nitro-enclaves",
            "i-test.test.nitro-enclaves",
        ]
        lifetimes = [
            dt.timedelta(days=3650),
            dt.timedelta(days=20),
            dt.timedelta(days=6),
            dt.timedelta(days=1),
        ]
        path_lengths: list[int | None] = [None, 2, 1, 0]
        self.certs: list[x509.Certificate] = []
        for i, (cn, life, plen) in enumerate(zip(names, lifetimes, path_lengths, strict=True)):
            issuer = None if i == 0 else (self.certs[i - 1].subject, self._keys[i - 1])
            self.certs.append(
                make_certificate(
                    cn,
                    self._keys[i],
                    issuer,
                    not_before=start,
                    not_after=start + life,
                    ca=True,
                    path_length=plen,
                    digital_signature=i < 3,
                )
            )
        self.cabundle = [c.public_bytes(serialization.Encoding.DER) for c in self.certs]
        self._leaf: tuple[bytes, ec.EllipticCurvePrivateKey] | None = None

    @property
    def root_der(self) -> bytes:
        return self.cabundle[0]

    @property
    def root_pem(self) -> bytes:
        return self.certs[0].public_bytes(serialization.Encoding.PEM)

    def leaf(
        self,
        *,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = LEAF_LIFETIME,
        curve: ec.EllipticCurve | None = None,
    ) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        """A leaf certificate (DER) and its key; the default one is made once and reused."""
        default = not_before is None and lifetime == LEAF_LIFETIME and curve is None
        if default and self._leaf is not None:
            return self._leaf
        key = ec.generate_private_key(curve or ec.SECP384R1())
        start = not_before or self.valid_from
        cert = make_certificate(
            "i-test-enc0.test.aws",
            key,
            (self.certs[3].subject, self._keys[3]),
            not_before=start,
            not_after=start + lifetime,
            ca=False,
            path_length=None,
            digital_signature=True,
        )
        made = (cert.public_bytes(serialization.Encoding.DER), key)
        if default:
            self._leaf = made
        return made

    def payload(
        self,
        *,
        pcrs: dict[int, bytes] | None = None,
        user_data: bytes | None = None,
        timestamp_ms: int | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
        leaf_der: bytes | None = None,
        cabundle: list[bytes] | None = None,
        indefinite: bool = False,
    ) -> bytes:
        fields: dict[str, object] = {
            "module_id": "i-0test0000000000-enc0000000000000001",
            "digest": "SHA384",
            "timestamp": timestamp_ms
            if timestamp_ms is not None
            else int(dt.datetime.now(dt.UTC).timestamp() * 1000),
            "pcrs": pcrs if pcrs is not None else fake_pcrs(),
            "certificate": leaf_der if leaf_der is not None else self.leaf()[0],
            "cabundle": cabundle if cabundle is not None else list(self.cabundle),
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
        if not indefinite:
            return cbor2.dumps(fields)
        # Like NSM's 2026 documents: an indefinite-length outer map (0xbf ... 0xff).
        body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in fields.items())
        return b"\xbf" + body + b"\xff"

    def sign(
        self,
        payload: bytes,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        protected: bytes = b"\xa1\x01\x38\x22",
        tag18: bool = False,
    ) -> bytes:
        """COSE_Sign1 over `payload` with raw r||s (48 + 48 bytes)."""
        signer = key or self.leaf()[1]
        der = signer.sign(signature_structure(protected, payload), ec.ECDSA(_SHA384))
        r, s = decode_dss_signature(der)
        size = (signer.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        cose = [protected, {}, payload, signature]
        return cbor2.dumps(cbor2.CBORTag(18, cose) if tag18 else cose)

    def document(self, **payload_fields: object) -> bytes:
        """A signed document: payload fields as in `payload`, default leaf key."""
        return self.sign(self.payload(**payload_fields))  # type: ignore[arg-type]

    def trusted(self, pcrs: dict[int, bytes] | None = None) -> PcrSet:
        p = pcrs if pcrs is not None else fake_pcrs()
        return PcrSet(pcr0=p[0], pcr1=p[1], pcr2=p[2])

    def trusted_values_json(self, pcrs: dict[int, bytes] | None = None) -> bytes:
        return self.trusted(pcrs).to_json()
