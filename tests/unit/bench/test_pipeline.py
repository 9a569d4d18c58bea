"""`relay bench pipeline`'s own parts: the requests it mints and the answers it accepts."""

from __future__ import annotations

import base64
import json
import time

import pytest

from schemas import rpc
from workers.attestation import MeasurementIndex, TrustRoots, Verifier
from workers.attestation.testchain import TestChain
from workers.bench.pipeline import BenchFailed, check_answer, mint_requests, percentile_ms
from workers.protocol import binding


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


def test_minted_requests_alternate_methods_and_each_carries_its_own_bound_attestation(
    chain: TestChain,
) -> None:
    """Every request's attestation verifies and binds exactly its own params (nothing reused)."""
    bodies = mint_requests(chain, 4, "t")
    verifier = Verifier(TrustRoots.development(chain.root_pem))
    trusted = MeasurementIndex.from_sets([chain.trusted()])
    documents = set()
    for i, body in enumerate(bodies):
        request = json.loads(body)
        assert request["method"] == (rpc.MethodCapabilityExec if i % 2 else rpc.MethodSecretsGet)
        bound = binding.bind(request["method"], json.dumps(request["params"]).encode())
        document = base64.b64decode(bound.attestation)
        verifier.verify(
            document, now=time.time(), expected_user_data=bound.user_data, trusted=trusted
        )
        documents.add(document)
    assert len(documents) == len(bodies)


def _request(method: str = rpc.MethodSecretsGet) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": "r-1", "method": method, "params": {}}).encode()


def test_a_secrets_result_with_its_secrets_is_accepted() -> None:
    """The success shape of each method passes."""
    check_answer(_request(), b'{"jsonrpc":"2.0","id":"r-1","result":{"secrets":null}}')
    check_answer(
        _request(rpc.MethodCapabilityExec), b'{"jsonrpc":"2.0","id":"r-1","result":{"payload":""}}'
    )


@pytest.mark.parametrize(
    "answer",
    [
        b'{"jsonrpc":"2.0","id":"r-1","error":{"code":-32603,"message":"internal error"}}',
        b'{"jsonrpc":"2.0","id":"other","result":{"secrets":null}}',
        b'{"jsonrpc":"2.0","id":"r-1","result":{"error":"capability failed"}}',
        b"not json",
        b"[]",
    ],
)
def test_an_error_a_foreign_id_or_a_wrong_shape_fails_the_bench(answer: bytes) -> None:
    """A failure is never counted as a fast answer."""
    with pytest.raises(BenchFailed):
        check_answer(_request(), answer)


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    """p50 of 1..100 ms is 50 ms, p99 is 99 ms, p100 the maximum."""
    samples = [i / 1000 for i in range(1, 101)]
    assert percentile_ms(samples, 50) == pytest.approx(50)
    assert percentile_ms(samples, 99) == pytest.approx(99)
    assert percentile_ms(samples, 100) == pytest.approx(100)
    assert percentile_ms([0.002], 99) == pytest.approx(2)
