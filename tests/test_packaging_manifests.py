"""The Dockerfile and the Kubernetes example keep the promises of SPEC §8 and README "Kubernetes".

Schema validity is `make lint-deploy`'s job (kustomize + kubernetes-validate); these tests check
what a schema cannot: that the pieces agree with each other and with sigwarden's own config.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigwarden.config import DEFAULT_CONFIG_PATH, load_config
from sigwarden.decision import match_route

REPO = Path(__file__).resolve().parent.parent
KUBERNETES = REPO / "config" / "kubernetes"
RESTRICTED = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / name).read_text())


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    return load("deployment.yaml")["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod.get("initContainers", []) if c["name"] == "sigwarden"]
    return container


@pytest.fixture(scope="module")
def app(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["containers"]
    return container


@pytest.fixture(scope="module")
def sidecar_config():
    return load_config(str(KUBERNETES / "sigwarden.yaml"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_user() -> int:
    users = [value for instruction, value in dockerfile_instructions() if instruction == "USER"]
    return int(users[-1].split(":")[0])


def test_dockerfile_is_multi_stage_on_a_configurable_python_base() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.12-slim")
    assert [value for instruction, value in instructions if instruction == "FROM"] == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE}",
    ]
    assert ("COPY", "--from=build /opt/sigwarden /opt/sigwarden") in instructions


def test_dockerfile_runs_sigwarden_as_a_numeric_non_root_user() -> None:
    instructions = dict(dockerfile_instructions())
    assert dockerfile_user() > 0
    assert json.loads(instructions["ENTRYPOINT"]) == ["sigwarden", "run"]
    assert instructions["EXPOSE"].split() == ["8080", "9090"]
    assert f"SIGWARDEN_CONFIG={DEFAULT_CONFIG_PATH}" in instructions["ENV"]


def test_the_build_context_is_an_allowlist() -> None:
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"  # .git, .venv, tests, local secrets: nothing enters unless listed
    assert "!addon/" in lines and "!pyproject.toml" in lines


def test_the_image_default_config_is_valid_and_holds_no_secret() -> None:
    config = load_config(str(REPO / "config" / "container.yaml"))
    assert config.upstream == "http://127.0.0.1:8000"
    assert {spec.source for spec in config.secrets.values()} == {"file"}


def test_sigwarden_is_a_native_sidecar(pod: dict[str, Any], sidecar: dict[str, Any]) -> None:
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "sigwarden"
    assert [c["name"] for c in pod["containers"]] == ["app"]


def test_the_sidecar_config_is_valid_and_reads_secrets_from_the_mounted_secret(
    sidecar: dict[str, Any], sidecar_config
) -> None:
    mounts = {mount["name"]: mount for mount in sidecar["volumeMounts"]}
    secret_dir = mounts["sendcloud-secret"]["mountPath"]
    for spec in sidecar_config.secrets.values():
        assert spec.source == "file", "secrets come from the mounted Secret, never inline or env"
        assert spec.location.startswith(secret_dir + "/")
    assert mounts["sigwarden-config"]["mountPath"] == str(Path(DEFAULT_CONFIG_PATH).parent)


def test_no_volume_is_mounted_with_subpath(pod: dict[str, Any]) -> None:
    for container in pod["initContainers"] + pod["containers"]:
        for mount in container.get("volumeMounts", []):
            assert "subPath" not in mount and "subPathExpr" not in mount, (container["name"], mount)


def test_the_app_is_bound_to_loopback_behind_the_proxy(app: dict[str, Any], sidecar_config) -> None:
    listen = app["command"][app["command"].index("--listen") + 1]
    assert sidecar_config.upstream == f"http://{listen}"
    assert listen.startswith("127.0.0.1:")
    assert "ports" not in app


def test_sidecar_probes_use_the_admin_port(sidecar: dict[str, Any], sidecar_config) -> None:
    admin_port = sidecar_config.admin_listen[1]
    probes = {kind: sidecar[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: probe["port"] for kind, probe in probes.items()} == dict.fromkeys(probes, admin_port)
    assert probes["startupProbe"]["path"] == "/readyz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"


def test_app_probes_go_through_the_proxy_port_on_unprotected_paths(app: dict[str, Any], sidecar_config) -> None:
    proxy_port = sidecar_config.listen[1]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = app[kind]["httpGet"]
        assert probe["port"] == proxy_port, kind
        assert match_route(sidecar_config.routes, probe["path"]) is None, f"{kind} would need a signature"


def test_the_service_targets_the_proxy_port_by_number(sidecar: dict[str, Any], sidecar_config) -> None:
    (port,) = load("service.yaml")["spec"]["ports"]
    assert port["targetPort"] == sidecar_config.listen[1]
    assert isinstance(port["targetPort"], int)  # named ports of native sidecars: ignored before 1.32
    assert {p["containerPort"] for p in sidecar["ports"]} == {sidecar_config.listen[1], sidecar_config.admin_listen[1]}


def test_the_admin_port_is_only_open_to_monitoring(sidecar_config) -> None:
    rules = load("networkpolicy.yaml")["spec"]["ingress"]
    open_to_all = {port["port"] for rule in rules if "from" not in rule for port in rule["ports"]}
    assert open_to_all == {sidecar_config.listen[1]}


def test_grace_period_covers_the_app_stop_and_the_drain(pod: dict[str, Any], app: dict[str, Any], sidecar_config):
    app_pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    needed = app_pre_stop + sidecar_config.drain_delay + sidecar_config.shutdown_grace
    assert pod["terminationGracePeriodSeconds"] > needed


def test_pod_and_containers_are_restricted(pod: dict[str, Any], sidecar: dict[str, Any], app: dict[str, Any]):
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_user()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sidecar["securityContext"]["runAsUser"] == dockerfile_user()
    for container in (sidecar, app):
        context = container["securityContext"]
        assert {key: context.get(key) for key in RESTRICTED} == RESTRICTED, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert set(container["resources"]) == {"requests", "limits"}, container["name"]


def test_each_container_has_a_writable_tmp_of_its_own(pod: dict[str, Any], sidecar: dict[str, Any], app):
    empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    tmp_volumes = []
    for container in (sidecar, app):
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert mount["name"] in empty_dirs and not mount.get("readOnly")
        tmp_volumes.append(mount["name"])
    assert len(set(tmp_volumes)) == 2


def test_kustomization_generates_the_config_map_the_pod_mounts(pod: dict[str, Any]) -> None:
    kustomization = load("kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource
    (generator,) = kustomization["configMapGenerator"]
    assert generator["files"] == ["config.yaml=sigwarden.yaml"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["sigwarden-config"]["configMap"]["name"] == generator["name"]
    assert "optional" not in volumes["sendcloud-secret"]["secret"]
