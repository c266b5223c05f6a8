"""``bannou-env render PRESET --backend kubernetes``: manifests a user can `kubectl apply`."""

from __future__ import annotations

import yaml

from pytest_bannou.backends.base import LABEL_OWNER_PID, LABEL_RUN_ID
from pytest_bannou.cli import main


def test_render_kubernetes_prints_namespace_deployments_and_services(capsys):
    assert main(["render", "split-auth", "--backend", "kubernetes", "--run-id", "by-hand"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds[0][0] == "Namespace"
    assert ("Deployment", "bannou-main") in kinds and ("Deployment", "bannou-auth") in kinds
    assert ("Service", "bannou-auth") in kinds
    namespace = docs[0]["metadata"]
    assert namespace["labels"][LABEL_RUN_ID] == "by-hand"
    # a file run by hand has no owning session: `bannou-env clean --all-stale` leaves it alone
    assert all(LABEL_OWNER_PID not in d["metadata"].get("labels", {}) for d in docs)
    auth = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "bannou-auth")
    container = auth["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BANNOU_APP_ID"] == "bannou-auth" and env["AUTH_SERVICE_ENABLED"] == "true"
    assert container["imagePullPolicy"] == "Never"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
