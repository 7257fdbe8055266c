"""The Kubernetes manifests in deploy/k8s/: valid against the API's schemas (kubernetes-validate,
strict), and a fleet that works: the config loads with the environment the pods get, the probes
hit /healthz and /readyz on the metrics port, every secret named exists, non-root and locked
down, resources requested, a PodDisruptionBudget over the same pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from forwarder.config import S3Coordination, parse_config, split_listen

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes minor still widely run (EKS extended support), and the newest.
VERSIONS = ("1.30.0", "1.37.0")


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                found.append((path.name, document))
    return found


def kind(name: str) -> dict[str, Any]:
    matches = [document for _, document in documents() if document["kind"] == name]
    assert len(matches) == 1, name
    return matches[0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("name", "document"), documents(), ids=lambda value: value if isinstance(value, str) else ""
)
def test_every_manifest_is_valid_kubernetes(name: str, document: dict[str, Any], version: str) -> None:
    """kubernetes-validate with the API's schemas, strict (a misspelt field is an error)."""
    kubernetes_validate.validate(document, version, strict=True)


def test_the_validator_refuses_what_the_api_would() -> None:
    """The same check fails on a misspelt field and a wrong type: it is not a formality."""
    deployment = kind("Deployment")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {**deployment, "spec": {**deployment["spec"], "replica": 3}}, VERSIONS[0], True
        )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {**deployment, "spec": {**deployment["spec"], "replicas": "3"}}, VERSIONS[0]
        )


def test_the_manifests_are_the_four_expected() -> None:
    """A Deployment, its config as a ConfigMap, its secrets as a Secret, a PodDisruptionBudget."""
    assert sorted(document["kind"] for _, document in documents()) == [
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Secret",
    ]  # fmt: skip


def container() -> dict[str, Any]:
    containers = kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def pod_env() -> dict[str, str]:
    """The environment a pod gets: the Secret's keys (envFrom) and POD_NAME (downward API)."""
    env = {item["name"]: "pod-7f9c" for item in container()["env"]}
    for source in container()["envFrom"]:
        assert source["secretRef"]["name"] == kind("Secret")["metadata"]["name"]
        env.update(kind("Secret")["stringData"])
    return env


def test_the_config_is_a_fleet_and_loads_with_the_pods_environment() -> None:
    """The ConfigMap's file loads (every ${VAR} given by the Deployment), coordinates through
    S3 with the pod's name as forwarder_id, and listens for the probes on the container port."""
    deployment = kind("Deployment")
    config_map = kind("ConfigMap")
    mount = next(m for m in container()["volumeMounts"] if m["name"] == "config")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert container()["args"] == ["run", "--config", f"{mount['mountPath']}/forwarder.yaml"]
    config = parse_config(config_map["data"]["forwarder.yaml"], env=pod_env())
    assert isinstance(config.coordination, S3Coordination) and config.coordination.forwarder_id == "pod-7f9c"
    host, port = split_listen(config.metrics.listen)
    assert host == "0.0.0.0" and container()["ports"] == [
        {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    ]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container()[probe]["httpGet"] == {"path": path, "port": "metrics"}
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert all(grace > p.output.ack_timeout_secs for p in config.pipelines)  # the batch in flight finishes


def test_several_replicas_under_a_disruption_budget() -> None:
    """Replicas share the pipelines; the budget selects exactly the Deployment's pods."""
    deployment, budget = kind("Deployment"), kind("PodDisruptionBudget")
    assert deployment["spec"]["replicas"] >= 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == budget["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_pods_run_locked_down_with_resources_requested() -> None:
    """Non-root (the image's uid), no privilege escalation, read-only root, no capabilities,
    the runtime's seccomp profile, a pinned image tag, CPU and memory requested."""
    pod = kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container()["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    assert {"cpu", "memory"} <= container()["resources"]["requests"].keys()
    assert "memory" in container()["resources"]["limits"]
    image = container()["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    writable = {m["mountPath"] for m in container()["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}  # downloads; in a fleet nothing else is written locally


def test_secrets_come_only_from_the_secret() -> None:
    """No secret value in the ConfigMap: every secret key of the config is a ${VAR} the Secret holds."""
    text = kind("ConfigMap")["data"]["forwarder.yaml"]
    for value in kind("Secret")["stringData"].values():
        assert value not in text
    assert '"${CATO_ZIP_PASSWORD}"' in text and "CATO_ZIP_PASSWORD" in kind("Secret")["stringData"]


def test_the_readme_explains_the_manifests() -> None:
    """README "Running a fleet" names the directory and how to apply it."""
    readme = (K8S.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running a fleet", 1)[1].split("\n## ", 1)[0]
    for needle in ("deploy/k8s/", "kubectl apply", "PodDisruptionBudget", "/readyz", "forwarder_id"):
        assert needle in section, needle
