"""The enclave's choice from the gateway's bundle (PROTOCOL 10.6): F+1 valid distinct signers.

For every entry, the response hash is recomputed from the enclave's **own** params and the
entry's result (`workers.protocol.signed`); the entry's signature must verify over it under one
of the enclave's configured signers (tried in configuration order). The claimed `signer` and the
deprecated `signatures` are never read. Results are grouped by hash, each group counts its
distinct verifying keys, and a group with at least `EnclaveConfig.f + 1` wins: the most signers,
then the bytewise smallest hash; its first valid entry is the answer.

Not done: step 3's regrouping of capability results that carry an `sdk.v1alpha.ReportResponse`
(its signatures cleared, then re-hashed) is an open point of the spec (10.13 item 4: no pinned
deterministic encoding, no vectors); such results group by their signed hash, which can only
split a group, never merge two different results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas import current, rpc
from schemas.gojson_errors import GoJSONError
from workers.enclave.errors import AnswerError, NoQuorum
from workers.protocol import signed as signing

PART_LIMIT = 4096
Params = current.SecretsRequestParams | current.CapabilityRequestParams
Result = rpc.SecretsResponseResult | rpc.CapabilityResponseResult


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen result: its group's hash, how many distinct configured signers signed it,
    and the index of its first valid entry in the bundle."""

    hash: bytes
    signers: int
    index: int
    result: Result
    signer_keys: tuple[bytes, ...] = field(default=())


def _what(method: str) -> str:
    return "secrets" if method == rpc.MethodSecretsGet else "capability"


def decode_bundle(
    method: str, raw: bytes
) -> list[current.SignedSecretsResponseResult] | list[current.SignedCapabilityResponseResult]:
    """Go's json.Unmarshal of the gateway's result into the method's bundle type."""
    try:
        if method == rpc.MethodSecretsGet:
            return list(current.decode_secrets_bundle(raw).responses or ())
        if method == rpc.MethodCapabilityExec:
            return list(current.decode_capability_bundle(raw).responses or ())
    except GoJSONError as exc:
        raise AnswerError(f"unmarshalling {_what(method)} response bundle: {exc}") from exc
    raise AnswerError(f"unknown relay method: {method}")


def _cap(text: str) -> str:
    raw = text.encode()
    return text if len(raw) <= PART_LIMIT else raw[:PART_LIMIT].decode(errors="ignore") + "..."


def select(method: str, params: Params, bundle: Sequence[object]) -> Selection:
    """10.6 steps 2-7 over decoded bundle entries; NoQuorum with upstream's diagnostic."""
    config = params.enclave_config
    keys = [k for k in (config.signers or ()) if k] if config is not None else []
    if config is None or not keys:
        raise AnswerError("DON signer set not configured")
    required = config.f + 1
    groups: dict[bytes, set[bytes]] = {}
    first: dict[bytes, int] = {}
    results: dict[bytes, Result] = {}
    entries: list[str] = []
    skipped: list[str] = []
    hashable = valid = invalid = 0
    for i, entry in enumerate(bundle):
        result = getattr(entry, "result", None)
        signature = getattr(entry, "signature", None)
        try:
            digest = signing.response_hash(method, params, result)  # type: ignore[arg-type]
        except (signing.SignedProtocolError, TypeError) as exc:
            skipped.append(f"{i}: unhashable: {exc}")
            entries.append(f"{i}=unhashable")
            continue
        hashable += 1
        raw_sig = getattr(signature, "signature", None) if signature is not None else None
        try:
            who = signing.check_relay_signature(keys, digest, raw_sig)
        except signing.SignatureRejected as exc:
            invalid += 1
            skipped.append(f"{i}: {exc.message}")
            entries.append(f"{i}=invalid")
            continue
        valid += 1
        entries.append(f"{i}={digest.hex()[:16]}")
        groups.setdefault(digest, set()).add(keys[who])
        first.setdefault(digest, i)
        results.setdefault(digest, result)  # type: ignore[arg-type]
    qualifying = [h for h, signers in groups.items() if len(signers) >= required]
    if not qualifying:
        most = max((len(s) for s in groups.values()), default=0)
        by_result = ", ".join(f"{h.hex()[:16]}:{len(s)}" for h, s in sorted(groups.items()))
        raise NoQuorum(
            f"verifying {_what(method)} response: no relay-DON result reached quorum: need"
            f" {required} valid distinct signers (raw bundle {len(bundle)}, hashable {hashable},"
            f" {valid} valid signatures, {invalid} invalid, {len(groups)} distinct results,"
            f" max {most} for any single result); signers by result: {_cap(by_result)};"
            f" entries: {_cap(', '.join(entries))}; skipped: {_cap('; '.join(skipped))}"
        )
    winner = min(qualifying, key=lambda h: (-len(groups[h]), h))
    return Selection(
        hash=winner,
        signers=len(groups[winner]),
        index=first[winner],
        result=results[winner],
        signer_keys=tuple(sorted(groups[winner])),
    )
