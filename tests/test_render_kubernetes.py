"""``bannou-env render PRESET --backend kubernetes``: manifests a user can `kubectl apply`."""

from __future__ import annotations

import shutil

import pytest
import yaml

from pytest_bannou.backends.base import LABEL_OWNER_PID, LABEL_RUN_ID
from pytest_bannou.backends.docker import images
from pytest_bannou.cli import main
from pytest_bannou.preset.library import builtin_presets_dir
from tests.support.k8s import kubeconfig_path
from tests.support.render_checks import k8s_model_errors, kubectl_dry_run


def test_render_kubernetes_prints_namespace_deployments_and_services(capsys):
    assert main(["render", "split-auth", "--backend", "kubernetes", "--run-id", "bannou-0000b1a2"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds[0][0] == "Namespace"
    assert ("Deployment", "bannou-main") in kinds and ("Deployment", "bannou-auth") in kinds
    assert ("Service", "bannou-auth") in kinds
    namespace = docs[0]["metadata"]
    assert namespace["labels"][LABEL_RUN_ID] == "bannou-0000b1a2"
    # a file run by hand has no owning session: `bannou-env clean --all-stale` leaves it alone
    assert all(LABEL_OWNER_PID not in d["metadata"].get("labels", {}) for d in docs)
    auth = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "bannou-auth")
    container = auth["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BANNOU_APP_ID"] == "bannou-auth" and env["AUTH_SERVICE_ENABLED"] == "true"
    assert container["imagePullPolicy"] == "Never"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


# --- issue 15, point 2: real images, every built-in preset checked ------------------------------
PRESETS = sorted(p.stem for p in builtin_presets_dir().glob("*.yaml"))


def render_docs(capsys, *argv: str) -> tuple[str, list[dict]]:
    assert main(["render", *argv, "--backend", "kubernetes"]) == 0
    text = capsys.readouterr().out
    return text, list(yaml.safe_load_all(text))


def containers(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}


@pytest.mark.parametrize("infra", ["false", "true"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_rendered_manifest_is_a_valid_kubernetes_object(capsys, monkeypatch, tmp_path, preset, infra):
    monkeypatch.setenv("BANNOU_INFRA", infra)
    text, docs = render_docs(capsys, preset)
    assert [e for d in docs for e in k8s_model_errors(d)] == []
    kubeconfig = kubeconfig_path()
    if kubeconfig is None:
        pytest.skip(
            "no kubeconfig (KUBECONFIG or /run/bannou-k8s/kubeconfig): checked against the API models only"
        )
    path = tmp_path / "manifests.yaml"
    path.write_text(text)
    result = kubectl_dry_run(path, kubeconfig)
    assert result.returncode == 0, result.stderr


MIXED = """\
name: mixed
description: stand-ins beside a public image no host here builds
extends: test-edge
topology:
  infrastructure:
    postgres:
      enabled: true
      image: postgres:16
      ports: [5432]
"""


def test_only_stand_ins_get_image_pull_policy_never_and_host_paths(capsys, monkeypatch, tmp_path):
    """No engine to ask (deterministic here): the stand-ins are what this host would build."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("BANNOU_INFRA", "true")
    (tmp_path / "mixed.yaml").write_text(MIXED)
    own = {s.tag for s in images.specs() if not s.requires or shutil.which(s.requires)}
    _, docs = render_docs(capsys, "mixed", "--presets-dir", str(tmp_path))
    pods = containers(docs)
    assert {p["containers"][0]["image"] for p in pods.values()} - own == {"postgres:16"}
    for name, pod in pods.items():
        c = pod["containers"][0]
        host_paths = [v for v in pod.get("volumes", []) if "hostPath" in v]
        if c["image"] in own:
            assert c["imagePullPolicy"] == "Never" and host_paths, name
        else:  # public: the cluster's default pull policy, nothing from this host
            assert "imagePullPolicy" not in c and not host_paths and "volumeMounts" not in c, name
    _, docs = render_docs(capsys, "test-edge", "--no-stand-ins")
    for name, pod in containers(docs).items():
        assert "imagePullPolicy" not in pod["containers"][0] and "volumes" not in pod, name
