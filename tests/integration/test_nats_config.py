"""`relay nats-config` on real nats-servers: every config passes `nats-server -t`, and the
generated layouts (nkeys on one server, a 3-server cluster, a hub with a leaf per operator)
carry a whole relay DON request from the gateway through a node to the vault and back."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from schemas import rpc
from tests.conftest import REPO_ROOT
from tests.integration.cluster import _wait_healthy
from workers.attestation.testchain import TestChain
from workers.deploy import natsconf, topology
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.membership import RegistryMembership
from workers.node.process import NODE_ACTORS, NodeProcess, RunningActor, start_actor
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer, find_binary, free_port
from workers.runtime.settings import NodeSettings

RELAY = Path(sys.executable).parent / "relay"
EXAMPLES = sorted((REPO_ROOT / "deploy" / "nats").glob("*.toml"))
DON = "relay-don"
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
SECRET = b"s3cr3t-api-key-for-the-demo"


def check_config(path: Path, env: dict[str, str] | None = None) -> None:
    """`nats-server -c FILE -t`: the server's own parser, rc 0 and 'is valid'."""
    done = subprocess.run(
        [str(find_binary()), "-c", str(path), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"
    assert "is valid" in done.stdout + done.stderr


def test_every_nats_server_config_in_the_repository_passes_nats_server_t(tmp_path: Path) -> None:
    """nats.conf and any other *.conf the repo ships (outside the venv) are valid configs; one
    that includes `./nats.conf` (the compose cluster's) is checked with the repo's beside it,
    as it is mounted."""
    confs = [
        p for p in REPO_ROOT.rglob("*.conf") if ".venv" not in p.parts and ".git" not in p.parts
    ]
    assert REPO_ROOT / "nats.conf" in confs
    for conf in confs:
        if "include ./nats.conf" not in conf.read_text():
            check_config(conf)
            continue
        beside = tmp_path / conf.parent.name
        beside.mkdir(exist_ok=True)
        shutil.copy(conf, beside / conf.name)
        shutil.copy(REPO_ROOT / "nats.conf", beside / "nats.conf")
        check_config(beside / conf.name, env={"NATS_SERVER_NAME": "nats-1"})


@pytest.mark.parametrize("dev", [True, False], ids=["dev-passwords", "nkeys"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_config_nats_config_writes_for_the_examples_passes_nats_server_t(
    example: Path, dev: bool, tmp_path: Path
) -> None:
    """The CLI writes one config per server of the example, each valid to nats-server."""
    done = subprocess.run(
        [str(RELAY), "nats-config", str(example), "--out", str(tmp_path), *(["--dev"] * dev)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(tmp_path.glob("*.conf"))
    expected = {f"{s.name}.conf" for s in topology.load(example).servers}
    assert {p.name for p in written} == {*expected, natsconf.ACCOUNTS_FILE}
    assert done.stdout.count("  config  ") == len(expected) + 1
    for conf in written:
        check_config(conf)
    assert (tmp_path / "seeds").exists() != dev


def test_a_topology_that_cannot_be_used_is_exit_2_with_every_reason(tmp_path: Path) -> None:
    """Nothing is written; each problem is one line."""
    raw = (REPO_ROOT / "deploy" / "nats" / "dev.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(raw.replace('operator = "operator-1"', 'operator = "operator-0"'))
    out = tmp_path / "out"
    done = subprocess.run(
        [str(RELAY), "nats-config", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "  - account 'operator-0' appears more than once" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("example", ["cluster", "hub-leaf"])
def test_tls_on_the_client_route_and_leaf_listeners_gives_valid_configs(
    example: str, tmp_path: Path
) -> None:
    """With certificate files for every listener (mutual TLS), each config still passes -t."""
    raw = tomllib.loads((REPO_ROOT / "deploy" / "nats" / f"{example}.toml").read_text())
    raw["tls"] = {}
    for listener in topology.LISTENERS:
        cert, key = _self_signed(tmp_path, listener)
        raw["tls"][listener] = {"cert": str(cert), "key": str(key), "ca": str(cert), "verify": True}
    written = natsconf.write(topology.parse(raw), tmp_path / "out", dev=False)
    for conf in written.configs:
        text = conf.read_text()
        assert ("client.pem" in text) == (conf.name != natsconf.ACCOUNTS_FILE)
        check_config(conf)


# --- the generated layouts, carrying real requests -------------------------------------------


def _dev_topology(**changes: Any) -> dict[str, Any]:
    raw = tomllib.loads((REPO_ROOT / "deploy" / "nats" / "dev.toml").read_text())
    raw.update(changes)
    return raw


def _secret_request(chain: TestChain, request_id: str) -> tuple[bytes, X25519PrivateKey]:
    key = X25519PrivateKey.generate()
    params = {
        "workflow_id": "wf-nats-config",
        "owner": OWNER,
        "execution_id": "00" * 32,
        "secrets": [{"key": "API_KEY", "namespace": "main"}],
        "enclave_public_key": enclave_crypto.public_hex(key),
    }
    bound = binding.bind(rpc.MethodSecretsGet, json.dumps(params).encode())
    document = chain.document(user_data=bound.user_data)
    sent = {**params, "attestation": base64.b64encode(document).decode()}
    body = {"jsonrpc": "2.0", "id": request_id, "method": rpc.MethodSecretsGet, "params": sent}
    return json.dumps(body).encode(), key


def _opened(body: bytes, key: X25519PrivateKey, request_id: str) -> bytes:
    (secret,) = json.loads(body)["result"]["secrets"]
    return enclave_crypto.decrypt_secret(
        base64.b64decode(secret["ciphertext"]),
        [base64.b64decode(s) for s in secret["encrypted_shares"]],
        key,
        name=b"main/API_KEY",
        reference=request_id.encode(),
    )


async def _seed(url: str, chain: TestChain, party: str, *, domain: str | None = None) -> None:
    """A one-node DON (node-0, F=0) into `party`'s registry bucket, as its registry-admin."""
    seed = seed_with_measurements([chain.trusted_values_json()], members=("node-0",), f=0)
    user, password = credentials_for("registry-admin", party)
    admin = await connect(url, actor="registry-admin", user=user, password=password)
    try:
        await load_entries(admin, seed_entries_for(seed), replicas=None, domain=domain)
    finally:
        await admin.close()


@asynccontextmanager
async def relay_don(
    *,
    node_url: str,
    hub_url: str,
    chain: TestChain,
    root: Path,
    js_domain: str | None = None,
) -> AsyncIterator[GatewayActor]:
    """node-0's actors on `node_url`; vault, echo and the gateway on `hub_url`."""
    extras: list[RunningActor] = []
    node = NodeProcess(
        NodeSettings(
            don=DON,
            node="node-0",
            nats_url=node_url,
            dev_root_pem=root,
            request_timeout_s=8,
            js_domain=js_domain,
        ),
        actors=tuple(NODE_ACTORS),
    )
    user, password = credentials_for("gateway")
    gw_nc = await connect(hub_url, actor="gateway", user=user, password=password)
    membership = RegistryMembership(DON)
    gateway: GatewayActor | None = None
    try:
        for name in ("vault", "echo"):
            extras.append(await start_actor(name, NodeSettings(nats_url=hub_url)))
        await asyncio.wait_for(node.start(), 30)
        await membership.start(gw_nc, wait_s=10)
        gateway = GatewayActor(
            gw_nc, GatewaySettings(don=DON, handler=HandlerConfig(request_timeout_s=8)), membership
        )
        await gateway.start()
        yield gateway
    finally:
        if gateway is not None:
            await gateway.stop()
        await membership.stop()
        await gw_nc.close()
        await node.stop()
        for actor in extras:
            await actor.service.stop()


@pytest.fixture
def chain_root(tmp_path: Path) -> tuple[TestChain, Path]:
    chain = TestChain()
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    return chain, root


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


async def test_a_dev_topology_with_nkeys_serves_a_secret_each_party_holding_only_its_seeds(
    tmp_path: Path, chain_root: tuple[TestChain, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every actor connects with the seed file its party's env file names; the secret decrypts."""
    chain, root = chain_root
    raw = _dev_topology()
    port = free_port()
    raw["servers"][0].update(port=port, http_port=free_port())
    written = natsconf.write(topology.parse(raw), tmp_path / "nats", dev=False)
    envs = {p.stem: _env_file(p) for p in written.env_files}
    # One process per party in production; here one process, so the shared names are node-0's.
    for account in ("gateway", "vault", "echo", "operator-0"):
        for name, value in envs[account].items():
            monkeypatch.setenv(name, value)
    server = NatsServer(config_file=written.configs[0], port=port, store_dir=tmp_path / "js")
    async with server:
        await _seed(server.url, chain, "node-0")
        # The gateway's registry-admin seed, for its membership bucket.
        monkeypatch.setenv(
            "RELAY_NATS_NKEY_SEED_REGISTRY_ADMIN",
            envs["gateway"]["RELAY_NATS_NKEY_SEED_REGISTRY_ADMIN"],
        )
        await _seed(server.url, chain, "gateway")
        async with relay_don(
            node_url=server.url, hub_url=server.url, chain=chain, root=root
        ) as gateway:
            body, key = _secret_request(chain, "nkeys-1")
            reply = await asyncio.wait_for(gateway.serve(body), 15)
            assert reply.status == 200, reply.body
            assert _opened(reply.body, key, "nkeys-1") == SECRET


@contextmanager
def generated_servers(tmp: Path, raw: dict[str, Any]) -> Iterator[dict[str, NatsServer]]:
    """Every server of the topology, from the configs `relay nats-config --dev` writes, started
    on loopback (the ports are in the topology); stopped by PID at the end."""
    written = natsconf.write(topology.parse(raw), tmp / "nats", dev=True)
    by_name = {s["name"]: s for s in raw["servers"]}
    servers = {
        conf.stem: NatsServer(
            config_file=conf,
            port=by_name[conf.stem]["port"],
            monitor_port=by_name[conf.stem]["http_port"],
            store_dir=tmp / f"{conf.stem}-js",
        )
        for conf in written.configs
        if conf.name != natsconf.ACCOUNTS_FILE
    }
    try:
        for server in servers.values():
            server.spawn()
        for server in servers.values():
            server.wait_ready(30.0)
        yield servers
    finally:
        for server in servers.values():
            server.cleanup()


def _ports(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "port": free_port(), "http_port": free_port(), **extra}


async def test_a_generated_3_server_cluster_serves_through_the_loss_of_any_one_server(
    tmp_path: Path, chain_root: tuple[TestChain, Path]
) -> None:
    """Registry at R3: with each server in turn killed (-9), requests are answered; it rejoins."""
    chain, root = chain_root
    raw = _dev_topology(
        layout="cluster",
        servers=[_ports(f"nats-{i}", cluster_port=free_port()) for i in range(3)],
    )
    with generated_servers(tmp_path, raw) as servers:
        members = list(servers.values())
        _wait_healthy(members, timeout_s=30)
        urls = ",".join(s.url for s in members)
        for party in ("node-0", "gateway"):
            done = await asyncio.to_thread(
                subprocess.run,
                [str(RELAY), "registry", "load", str(_seed_file(tmp_path, chain)), "--nats", urls,
                 "--replicas", "3", "--party", party],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        async with relay_don(node_url=urls, hub_url=urls, chain=chain, root=root) as gateway:
            for n, victim in enumerate(members):
                victim.kill()
                answered = 0
                deadline = time.monotonic() + 30
                while answered < 3 and time.monotonic() < deadline:
                    request_id = f"cluster-{n}-{answered}"
                    body, key = _secret_request(chain, request_id)
                    reply = await gateway.serve(body)
                    if reply.status == 200 and b'"result"' in reply.body:
                        assert _opened(reply.body, key, request_id) == SECRET
                        answered += 1
                assert answered == 3, f"server {victim.url} down: {reply.body!r}"
                victim.spawn()
                await asyncio.to_thread(victim.wait_ready, 30.0)
                await asyncio.to_thread(_wait_healthy, members, timeout_s=30)


def _seed_file(tmp: Path, chain: TestChain) -> Path:
    path = tmp / "seed.json"
    if not path.exists():
        path.write_text(
            json.dumps(
                seed_with_measurements([chain.trusted_values_json()], members=("node-0",), f=0)
            )
        )
    return path


async def test_a_leaf_in_its_own_domain_serves_the_gateway_on_the_hub_from_the_hubs_registry(
    tmp_path: Path, chain_root: tuple[TestChain, Path]
) -> None:
    """node-0's actors on operator-0's leaf (domain op0, RELAY_JS_DOMAIN=hub) answer the gateway
    on the hub: rpc in through the leaf link, the vault's cap.v1 out through it, registry read
    from the hub's domain."""
    chain, root = chain_root
    raw = _dev_topology(
        layout="hub",
        servers=[
            _ports("hub", role="hub", leaf_port=free_port(), domain="hub"),
            _ports("leaf-0", role="leaf", operator="operator-0", domain="op0"),
        ],
    )
    with generated_servers(tmp_path, raw) as servers:
        hub, leaf = servers["hub"], servers["leaf-0"]
        await asyncio.to_thread(_wait_leaf, hub)
        # Loaded through the leaf, into the hub's domain (operator-0's account there).
        await _seed(leaf.url, chain, "node-0", domain="hub")
        await _seed(hub.url, chain, "gateway")
        async with relay_don(
            node_url=leaf.url, hub_url=hub.url, chain=chain, root=root, js_domain="hub"
        ) as gateway:
            body, key = _secret_request(chain, "leaf-1")
            reply = await asyncio.wait_for(gateway.serve(body), 15)
            assert reply.status == 200, reply.body
            assert _opened(reply.body, key, "leaf-1") == SECRET


def _wait_leaf(hub: NatsServer) -> None:
    """Until the hub reports the leaf connected (its /leafz)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{hub.monitor_port}/leafz", timeout=1
            ) as resp:
                if json.loads(resp.read()).get("leafnodes", 0) >= 1:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the leaf did not connect to the hub")


def test_no_environment_leaks_between_tests() -> None:
    """The nkey test's env changes were undone (monkeypatch)."""
    assert not any(k.startswith("RELAY_NATS_NKEY_SEED_") for k in os.environ)
