"""Certificate parsing and chain validation with a bounded cache of proven links.

What a cached link proves is only "this exact issuer DER signed this exact child DER"; validity
windows, CA flags and key usage are re-checked against `now` on every call from parsed values.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import OrderedDict
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from workers.attestation.errors import ChainError


@dataclass(frozen=True, slots=True)
class ParsedCert:
    der: bytes
    cert: x509.Certificate
    not_before: float
    not_after: float
    is_ca: bool
    has_basic_constraints: bool
    path_length: int | None
    key_cert_sign: bool
    digital_signature: bool
    ecdsa_sha384: bool
    _key: list[ec.EllipticCurvePublicKey | None]

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        # Decoding an EC point is costly and only the leaf's key is ever needed: load it lazily.
        if not self._key:
            key = self.cert.public_key()
            self._key.append(key if isinstance(key, ec.EllipticCurvePublicKey) else None)
        return self._key[0]

    @property
    def subject(self) -> str:
        # Only error messages need it, and rendering a name costs more than parsing the cert.
        return self.cert.subject.rfc4514_string()


def parse_certificate(der: bytes) -> ParsedCert:
    try:
        cert = x509.load_der_x509_certificate(der)
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca, has_bc, path_length = bc.ca, True, bc.path_length
        except x509.ExtensionNotFound:
            is_ca, has_bc, path_length = False, False, None
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            cert_sign, digital_signature = ku.key_cert_sign, ku.digital_signature
        except x509.ExtensionNotFound:
            cert_sign, digital_signature = False, False
        sig_oid = cert.signature_algorithm_oid
    except (ValueError, TypeError) as exc:
        raise ChainError("bad_certificate", f"certificate does not parse: {exc}") from exc
    return ParsedCert(
        der=der,
        cert=cert,
        not_before=not_before,
        not_after=not_after,
        is_ca=is_ca,
        has_basic_constraints=has_bc,
        path_length=path_length,
        key_cert_sign=cert_sign,
        digital_signature=digital_signature,
        _key=[],
        ecdsa_sha384=sig_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    )


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[object, object] = OrderedDict()

    def get(self, key: object) -> object | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: object, value: object) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class ChainValidator:
    """Validate leaf -> cabundle[N-1] .. cabundle[1] -> pinned root (cabundle[0])."""

    def __init__(self, roots: tuple[bytes, ...], *, cache: bool, cache_size: int) -> None:
        self._roots = frozenset(roots)
        self._cache = cache
        self._parsed = _Lru(cache_size)
        self._links = _Lru(cache_size)

    def parsed(self, der: bytes) -> ParsedCert:
        if self._cache:
            hit = self._parsed.get(der)
            if hit is not None:
                return hit  # type: ignore[return-value]
        parsed = parse_certificate(der)
        if self._cache:
            self._parsed.put(der, parsed)
        return parsed

    def validate(self, leaf_der: bytes, cabundle: tuple[bytes, ...], now: float) -> ParsedCert:
        """Return the parsed leaf once the whole chain is proven at `now`."""
        if cabundle[0] not in self._roots:
            raise ChainError("untrusted_root", "cabundle[0] is not a trusted root certificate")
        # Root first in the bundle; the path runs the other way.
        path = [self.parsed(leaf_der)] + [self.parsed(der) for der in reversed(cabundle)]
        for depth, cert in enumerate(path):
            if not cert.not_before <= now <= cert.not_after:
                raise ChainError(
                    "cert_expired",
                    f"certificate {cert.subject} is not valid at {now:.0f} "
                    f"(valid {cert.not_before:.0f} to {cert.not_after:.0f})",
                )
            if depth == 0:
                continue
            if not cert.is_ca:
                raise ChainError("chain_invalid", f"{cert.subject} is not a CA certificate")
            if not cert.key_cert_sign:
                raise ChainError("chain_invalid", f"{cert.subject} may not sign certificates")
            # CA certs between this one and the leaf; the root's own count does not matter.
            below = depth - 1
            if cert.path_length is not None and below > cert.path_length:
                raise ChainError("chain_invalid", f"{cert.subject} path length exceeded")
        leaf = path[0]
        if leaf.is_ca:
            raise ChainError("chain_invalid", "the leaf certificate is a CA")
        if not leaf.digital_signature:
            raise ChainError("chain_invalid", "the leaf certificate may not sign (keyUsage)")
        if leaf.public_key is None:
            raise ChainError("bad_leaf_key", "leaf certificate's public key is not ECDSA")
        if not leaf.ecdsa_sha384:
            raise ChainError("bad_leaf_key", "leaf certificate is not signed with ECDSA-SHA384")
        links = list(itertools.pairwise(path))
        # A proven link already covers the issuer/subject names (both are inside the DER bytes
        # that key it), so the warm path skips building Name objects, the costliest step left.
        if self._cache and all(self._links.get((c.der, i.der)) is not None for c, i in links):
            return leaf
        try:
            self._prove(path, now)
        except ChainError:
            # Name each broken link when we can: a clearer reason than the path builder's.
            # Only on failure: building Name objects costs about as much as parsing the certs,
            # and the path validation checks issuer/subject chaining itself.
            for child, issuer in links:
                if child.cert.issuer != issuer.cert.subject:
                    raise ChainError(
                        "chain_invalid", f"{child.subject} was not issued by {issuer.subject}"
                    ) from None
            raise
        if self._cache:
            for child, issuer in links:
                self._links.put((child.der, issuer.der), True)
        return leaf

    def _prove(self, path: list[ParsedCert], now: float) -> None:
        """Every signature of the chain, by RFC 5280 path validation in Rust (cryptography)."""
        root = path[-1].cert
        verifier = (
            PolicyBuilder()
            .store(Store([root]))
            .time(dt.datetime.fromtimestamp(now, dt.UTC))
            .max_chain_depth(len(path))
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                # Why relaxed: the Nitro leaf has no EKU and no SAN, which a client policy wants.
                # The leaf's CA flag, keyUsage and signature algorithm are checked above instead.
                ee_policy=ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            built = verifier.verify(path[0].cert, [p.cert for p in path[1:-1]]).chain
        except VerificationError as exc:
            raise ChainError("chain_invalid", f"certificate chain does not verify: {exc}") from exc
        # The path builder may find a valid path that skips some cabundle entries (say an extra
        # certificate named like the root). Only the exact path we check may be called proven,
        # or the link cache would hold links that nobody verified.
        if len(built) != len(path) or any(b != p.cert for b, p in zip(built, path, strict=False)):
            raise ChainError(
                "chain_invalid", "cabundle is not exactly the path from the leaf to the root"
            )
