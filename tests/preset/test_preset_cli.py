"""``bannou-env presets``: list, show, validate, schema."""

from __future__ import annotations

import json

from pytest_bannou.cli import main


def test_list_shows_builtin_and_user_presets(tmp_path, write, capsys, monkeypatch):
    monkeypatch.delenv("BANNOU_PRESETS_DIR", raising=False)
    write("mine", "description: my preset\ncategory: custom\ntopology:\n  nodes: [{name: n}]\n", tmp_path)
    assert main(["presets", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mine" in out and "my preset" in out and str(tmp_path / "mine.yaml") in out
    assert "monolith" in out and "test-edge" in out
    assert main(["presets", "list", "--json", "--dir", str(tmp_path)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mine"]["category"] == "custom" and len(rows["mine"]["hash"]) == 16
    assert rows["monolith"]["valid"] is True


def test_list_reads_bannou_presets_dir_and_flags_invalid_presets(tmp_path, write, capsys, monkeypatch):
    write("broken", "topology:\n  nodes: []\n", tmp_path)
    monkeypatch.setenv("BANNOU_PRESETS_DIR", str(tmp_path))
    assert main(["presets", "list", "--json"]) == 1
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["valid"] is False and "presets validate" in rows["broken"]["description"]


def test_show_prints_resolved_topology(capsys, monkeypatch):
    monkeypatch.delenv("BANNOU_INFRA", raising=False)
    assert main(["presets", "show", "split-auth"]) == 0
    out = capsys.readouterr().out
    assert "bannou-auth (bannou, app id bannou-auth, replicas 1)" in out
    assert "AUTH_SERVICE_ENABLED=true" in out and "account -> bannou-auth" in out
    args = ["presets", "show", "split-auth", "--json", "--env", "X=1", "--replicas", "bannou-auth=2"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    auth = next(n for n in data["nodes"] if n["name"] == "bannou-auth")
    assert auth["replicas"] == 2 and auth["environment"]["X"] == "1"
    assert data["mappings"] == {"account": "bannou-auth", "auth": "bannou-auth"}


def test_show_file_path_and_errors(tmp_path, write, capsys):
    path = write("p", "topology:\n  nodes: [{name: n}]\n", tmp_path)
    assert main(["presets", "show", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "p"
    assert main(["presets", "show", "no-such-preset"]) == 1
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err
    assert main(["presets", "show", "monolith", "--replicas", "bannou=x"]) == 2  # a usage error
    assert "--replicas bannou=x" in capsys.readouterr().err


def test_validate_exit_codes_and_lines(tmp_path, write, capsys):
    good = write("good", "topology:\n  nodes: [{name: n}]\n", tmp_path)
    bad = write("bad", "topology:\n  nodes:\n    - name: n\n      replica: 1\n    - name: n\n", tmp_path)
    assert main(["presets", "validate", str(good), "monolith"]) == 0
    out = capsys.readouterr().out
    assert f"{good}: ok" in out
    assert main(["presets", "validate", str(good), str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{good}: ok",
        f"{bad}:4:7: unknown key `replica` in node `n`; did you mean `replicas`?",
        f"{bad}:5:13: duplicate node name 'n' (first defined at line 3); node names must be unique",
    ]
    assert main(["presets", "validate", str(tmp_path)]) == 1  # a directory: every file in it
    assert main(["presets", "validate", "nope"]) == 1
    assert "unknown preset 'nope'" in capsys.readouterr().out


def test_schema_is_json_schema_with_camel_case_keys(capsys):
    assert main(["presets", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"topology", "requiredBackends", "processingPools", "testers"} <= set(schema["properties"])
    node = schema["$defs"]["NodeSpec"]["properties"]
    assert {"appId", "meshEnabled", "dependsOn", "healthcheck", "replicas"} <= set(node)
    assert schema["$defs"]["NodeSpec"]["additionalProperties"] is False


def test_show_lists_processing_pools_of_a_preset_without_topology(tmp_path, write, capsys):
    path = write(
        "pools",
        "processing_pools:\n"
        "  - {pool_type: asset-processor, plugin: asset, min_instances: 1, max_instances: 5}\n",
        tmp_path,
    )
    assert main(["presets", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nodes: (none)" in out and "processing pool asset-processor (plugin asset): 1-5 instances" in out
    assert main(["presets", "show", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes"] == [] and data["processing_pools"][0]["maxInstances"] == 5
