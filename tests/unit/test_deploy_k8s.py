"""deploy/k8s and the NATS Helm values, checked offline: every manifest parses and validates
strictly against the Kubernetes 1.30 and 1.33 schemas (kubernetes-validate: an unknown field is
an error), every kustomization reference resolves, and what they run agrees with the code."""

from __future__ import annotations

import copy
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.deploy_support import (
    DEPLOY,
    ROOT,
    assert_help_works,
    assert_read_by_the_code,
    assert_relay_command,
    command_of,
    load,
    load_all,
)
from workers.gateway import sizing
from workers.gateway.ratelimit import RateLimit
from workers.node.process import NODE_ACTORS
from workers.runtime.bus import Service

K8S = DEPLOY / "k8s"
K8S_VERSION = "1.33"
OLDEST_K8S = "1.30"  # docs/containers.md
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
CHART_KEYS = ROOT / "tests" / "vectors" / "helm" / "nats-chart-values-keys.json"
VALUES = K8S / "nats" / "values.yaml"
DRAIN_S = inspect.signature(Service.stop).parameters["drain_timeout_s"].default


# --- a small kustomize: resources, patches (strategic merge of maps), namespace, images ----------


def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def build(folder: Path) -> list[dict[str, Any]]:
    """The resources a kustomization yields; an unresolvable reference fails the test."""
    kustomization = load(folder / "kustomization.yaml")
    docs: list[dict[str, Any]] = []
    for ref in kustomization["resources"]:
        path = folder / ref
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), f"{folder}: {ref} is no kustomization"
            docs += build(path)
        else:
            assert path.is_file(), f"{folder}: resource {ref} does not exist"
            docs += load_all(path)
    for patch_ref in kustomization.get("patches", []):
        patch = load(folder / patch_ref["path"])
        targets = [
            d
            for d in docs
            if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]
        ]
        assert len(targets) == 1, f"{folder}: patch {patch_ref['path']} matches {len(targets)}"
        merge(targets[0], patch)
    images = {c["image"].split(":")[0] for d in docs for c in _containers(d)}
    for image in kustomization.get("images", []):
        assert image["name"] in images, f"{folder}: image {image['name']} is used by nothing"
        for doc in docs:
            for container in _containers(doc):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] != "Deployment":
        return []
    containers: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    return containers


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def overlay(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    folder: Path = request.param
    return build(folder)


# --- schema -------------------------------------------------------------------------------------


def test_there_is_an_overlay_for_a_node_operator_and_one_for_the_gateway() -> None:
    """The two example overlays exist and each builds on a base."""
    assert [p.name for p in OVERLAYS] == ["example-gateway", "example-operator"]


@pytest.mark.parametrize("path", sorted(K8S.rglob("*.yaml")), ids=lambda p: str(p.relative_to(K8S)))
def test_every_file_parses_as_yaml(path: Path) -> None:
    """Each YAML file under deploy/k8s holds one or more mappings."""
    assert load_all(path)


@pytest.mark.parametrize("version", [OLDEST_K8S, K8S_VERSION])
def test_every_built_resource_validates_strictly_against_the_kubernetes_schema(
    overlay: list[dict[str, Any]], version: str
) -> None:
    """No unknown field, no wrong type, for every resource an overlay yields (patches applied),
    on the oldest Kubernetes the manifests support and on a current one."""
    for doc in overlay:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_prestop_sleep_is_why_older_kubernetes_is_not_supported() -> None:
    """The gateway's `preStop: sleep` is unknown to 1.28's schema (1.29 has it behind a feature
    gate, on by default from 1.30: the oldest supported)."""
    (gateway, _service) = load_all(K8S / "base" / "gateway" / "gateway.yaml")
    with pytest.raises(kubernetes_validate.ValidationError, match="sleep"):
        kubernetes_validate.validate(gateway, "1.28", strict=True)
    kubernetes_validate.validate(gateway, OLDEST_K8S, strict=True)


def test_the_validator_refuses_a_misspelled_field() -> None:
    """The check above can fail: a probe field with a typo is an error in strict mode."""
    doc = copy.deepcopy(load(K8S / "base" / "node" / "verifier.yaml"))
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("folder", OVERLAYS, ids=lambda p: p.name)
def test_kubectl_kustomize_builds_each_overlay_to_the_same_resources(folder: Path) -> None:
    """The real kustomize agrees: it builds, and yields the resources the small builder does."""
    proc = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    built = [d for d in yaml.safe_load_all(proc.stdout) if d]
    ours = build(folder)

    def key(d: dict[str, Any]) -> tuple[str, str, str | None]:
        return (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))

    assert sorted(map(key, built)) == sorted(map(key, ours))
    for doc in built:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --- what the manifests run ---------------------------------------------------------------------


def test_every_container_runs_a_real_relay_command(overlay: list[dict[str, Any]]) -> None:
    """The args parse with the relay CLI, and `relay <command> --help` works."""
    commands = []
    for doc in of_kind(overlay, "Deployment"):
        for container in _containers(doc):
            assert_relay_command(container["args"])
            commands.append(command_of(container["args"]))
    assert_help_works(commands)


def test_the_operator_overlay_runs_each_node_actor_once() -> None:
    """One Deployment per actor of a node, each `relay worker <actor>`, nothing else."""
    docs = build(K8S / "overlays" / "example-operator")
    actors = sorted(c["args"][1] for d in of_kind(docs, "Deployment") for c in _containers(d))
    assert actors == sorted(NODE_ACTORS)


def test_every_container_has_probes_requests_and_no_privileges(
    overlay: list[dict[str, Any]],
) -> None:
    """Startup, liveness and readiness probes on a declared port; CPU and memory requests;
    non-root, read-only root, no privilege escalation, no API token."""
    for doc in of_kind(overlay, "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            ports = {p["name"] for p in container["ports"]}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, (doc, probe)
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_rolling_update_never_drops_below_the_running_replicas(
    overlay: list[dict[str, Any]],
) -> None:
    """maxUnavailable 0: the new pod is ready before an old one drains."""
    for doc in of_kind(overlay, "Deployment"):
        assert doc["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_sigterm_drains_within_the_termination_grace_period(
    overlay: list[dict[str, Any]],
) -> None:
    """Workers: the endpoints' drain, the requests in flight and the connection's drain, each
    bounded by Service.stop's timeout, fit; the gateway: preStop + --drain-timeout fit."""
    for doc in of_kind(overlay, "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        (container,) = pod["containers"]
        args = container["args"]
        if args[0] == "worker":
            assert grace > 3 * DRAIN_S
        else:
            drain = float(args[args.index("--drain-timeout") + 1])
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert grace >= pre_stop + drain + 5


def test_each_process_has_its_own_nats_identity_from_a_mounted_secret(
    overlay: list[dict[str, Any]],
) -> None:
    """RELAY_NATS_NKEY_SEED_<ACTOR> names a file inside a Secret volume of that container, one
    Secret per actor, and the TLS paths lie inside the TLS Secret's mount."""
    configs = {d["metadata"]["name"]: d["data"] for d in of_kind(overlay, "ConfigMap")}
    secrets = set()
    for doc in of_kind(overlay, "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        args = container["args"]
        actor = args[1] if args[0] == "worker" else args[0]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        env = {e["name"]: e["value"] for e in container["env"]}
        for ref in container["envFrom"]:
            env |= configs[ref["configMapRef"]["name"]]
        seed = env[f"RELAY_NATS_NKEY_SEED_{actor.upper().replace('-', '_')}"]
        volume = mounts[str(Path(seed).parent)]
        assert Path(seed).name in {i["path"] for i in volume["secret"]["items"]}
        secrets.add(volume["secret"]["secretName"])
        for part in ("CA", "CERT", "KEY"):
            assert "secret" in mounts[str(Path(env[f"RELAY_NATS_TLS_{part}"]).parent)]
        assert env["RELAY_NATS_URL"].startswith("tls://")
    assert len(secrets) == len(of_kind(overlay, "Deployment"))


def test_every_variable_the_manifests_set_is_one_the_code_reads(
    overlay: list[dict[str, Any]],
) -> None:
    """ConfigMap keys and container env names are all real settings."""
    names = [k for d in of_kind(overlay, "ConfigMap") for k in d["data"]]
    names += [
        e["name"] for d in of_kind(overlay, "Deployment") for c in _containers(d) for e in c["env"]
    ]
    assert names
    assert_read_by_the_code(names)


def test_every_deployment_has_a_disruption_budget(overlay: list[dict[str, Any]]) -> None:
    """A PodDisruptionBudget whose selector picks exactly that Deployment's pods."""
    budgets = of_kind(overlay, "PodDisruptionBudget")
    for doc in of_kind(overlay, "Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, doc["metadata"]["name"]
        assert matching[0]["spec"]["minAvailable"] >= 1


def test_the_verifiers_scale_on_cpu() -> None:
    """An HPA on the verifier Deployment, on CPU utilisation, which needs a CPU request."""
    docs = build(K8S / "overlays" / "example-operator")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    (deployment,) = [
        d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == target["name"]
    ]
    assert _containers(deployment)[0]["args"] == ["worker", "verifier"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2  # the overlay's patch applied (3), above one
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_a_deployment_an_hpa_scales_leaves_its_replicas_to_the_hpa(
    overlay: list[dict[str, Any]],
) -> None:
    """No `replicas` on an HPA's target: each `kubectl apply` would reset the HPA's choice."""
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(overlay, "HorizontalPodAutoscaler")
    }
    assert targets
    for doc in of_kind(overlay, "Deployment"):
        if doc["metadata"]["name"] in targets:
            assert "replicas" not in doc["spec"], doc["metadata"]["name"]
        else:
            assert doc["spec"]["replicas"] >= 2, doc["metadata"]["name"]


def test_network_policies_let_pods_reach_only_nats_and_dns(overlay: list[dict[str, Any]]) -> None:
    """Every pod is selected in both directions; egress only to 4222 and 53, each rule to named
    peers; ingress only to the gateway's HTTP port and the ingress's metrics port."""
    policies = of_kind(overlay, "NetworkPolicy")
    for doc in of_kind(overlay, "Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        selecting = [
            p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        types = {t for p in selecting for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, doc["metadata"]["name"]
        egress = [rule for p in selecting for rule in p["spec"].get("egress", [])]
        assert {port["port"] for rule in egress for port in rule["ports"]} == {4222, 53}
        assert all(rule.get("to") for rule in egress)
        ingress = [rule for p in selecting for rule in p["spec"].get("ingress", [])]
        opened = {port["port"] for rule in ingress for port in rule["ports"]}
        declared = {p["containerPort"] for c in _containers(doc) for p in c["ports"]}
        assert opened <= declared & {8080, 9464}, doc["metadata"]["name"]


def test_the_gateways_limits_carry_the_rate_it_is_deployed_for() -> None:
    """--node-rate/--global-rate come from the sizing for its --expected-rps over 4 nodes."""
    docs = build(K8S / "overlays" / "example-gateway")
    (deployment,) = of_kind(docs, "Deployment")
    args = _containers(deployment)[0]["args"]

    def value(flag: str) -> str:
        return str(args[args.index(flag) + 1])

    problems = sizing.shortfalls(
        RateLimit.parse(value("--node-rate")),
        RateLimit.parse(value("--global-rate")),
        members=4,
        f=1,
        expected_rps=float(value("--expected-rps")),
    )
    assert problems == []


# --- the NATS Helm values -----------------------------------------------------------------------


def _paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted key paths of the values, not descending into the free-form merge/patch maps."""
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict) and key not in {"merge", "patch"}:
            out += _paths(value, path + ".")
    return out


def test_every_helm_value_is_a_key_of_the_nats_chart() -> None:
    """Each key path of deploy/k8s/nats/values.yaml exists in the chart's values (test data)."""
    known = set(json.loads(CHART_KEYS.read_text())["keys"])
    known |= {k.rsplit(".", 1)[0] for k in known if "." in k}  # the maps holding them
    unknown = [p for p in _paths(load(VALUES)) if p not in known]
    assert unknown == []


def test_nats_runs_as_a_tls_cluster_of_three_with_persistent_jetstream() -> None:
    """Cluster of 3, JetStream on PVCs, TLS (verified) on client and route listeners."""
    config = load(VALUES)["config"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    for listener in ("nats", "cluster"):
        tls = config[listener]["tls"]
        assert tls["enabled"] is True
        assert tls["secretName"]
        assert tls["merge"]["verify"] is True
    assert load(VALUES)["podDisruptionBudget"]["enabled"] is True


def test_the_accounts_file_is_mounted_where_the_config_includes_it() -> None:
    """The $include path, relative to the chart's /etc/nats-config/nats.conf, is inside the
    mounted nats-accounts Secret."""
    values = load(VALUES)
    include = values["config"]["merge"]["$include"]
    (mount,) = [p["value"] for p in values["container"]["patch"] if p["path"] == "/volumeMounts/-"]
    (volume,) = [p["value"] for p in values["podTemplate"]["patch"]]
    assert volume["name"] == mount["name"]
    assert volume["secret"]["secretName"] == "nats-accounts"
    resolved = (Path("/etc/nats-config") / include).resolve()
    assert resolved.parent == Path(mount["mountPath"])


def test_what_the_values_merge_into_the_pod_validates_against_the_kubernetes_schema() -> None:
    """container.merge/patch and podTemplate.merge/patch applied to a pod: every field exists."""
    values = load(VALUES)
    container: dict[str, Any] = {"name": "nats", "image": "nats", "volumeMounts": []}
    merge(container, values["container"]["merge"])
    pod: dict[str, Any] = {"containers": [container], "volumes": []}
    merge(pod, values["podTemplate"]["merge"]["spec"])
    for op in values["container"]["patch"]:
        assert op["op"] == "add"
        assert op["path"].endswith("/-")
        container[op["path"].strip("/-")].append(op["value"])
    for op in values["podTemplate"]["patch"]:
        assert op["op"] == "add"
        assert op["path"].startswith("/spec/")
        pod[op["path"].removeprefix("/spec/").strip("/-")].append(op["value"])
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nats-0"}, "spec": pod}
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_what_the_values_merge_into_the_nats_config_is_accepted_by_nats_server(
    tmp_path: Path,
) -> None:
    """The merged server options (lame duck) and the include pass `nats-server -t`."""
    merged = load(VALUES)["config"]["merge"]
    accounts = tmp_path / merged["$include"]
    accounts.parent.mkdir(parents=True)
    accounts.write_text("accounts { RELAY { jetstream: enabled } }\n")
    lines = [f"include {merged['$include']}"]
    for key, value in merged.items():
        if key != "$include":
            lines.append(f"{key}: {str(value).removeprefix('<<').removesuffix('>>').strip()}")
    conf = tmp_path / "nats.conf"
    conf.write_text("\n".join(lines) + "\n")
    binary = Path(sys.executable).parent / "nats-server"
    proc = subprocess.run([str(binary), "-t", "-c", str(conf)], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_the_relay_connects_to_the_helm_releases_client_service() -> None:
    """RELAY_NATS_URL of both bases is the release `nats` in namespace `nats`, over TLS."""
    port = load(VALUES)["config"]["nats"]["port"]
    for base in ("node", "gateway"):
        docs = build(K8S / "base" / base)
        (config,) = of_kind(docs, "ConfigMap")
        assert config["data"]["RELAY_NATS_URL"] == f"tls://nats.nats.svc.cluster.local:{port}"
