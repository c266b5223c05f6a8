"""The pure parts of live changes and of the messaging wiring (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_bannou.environment.kept import changed_since_kept
from pytest_bannou.environment.live import (
    ChangeError,
    ConfigVersion,
    History,
    TopologyChange,
    change_topology,
    load_history,
    save_history,
    topology_from_json,
    topology_to_json,
)
from pytest_bannou.messaging import session as messaging_env
from pytest_bannou.preset import PresetLibrary
from pytest_bannou.reference import mesh_file, messaging
from pytest_bannou.reference.node import enabled_services


@pytest.fixture(scope="module")
def split(presets_dir: Path):
    return PresetLibrary([presets_dir]).resolve("msg-split")


def test_node_side_names_match_the_reference_node():
    assert messaging_env.AMQP_URL_ENV == messaging.AMQP_URL_ENV
    assert messaging_env.HEARTBEAT_INTERVAL_ENV == messaging.HEARTBEAT_INTERVAL_ENV
    assert messaging_env.MESH_ENDPOINTS_ENV == messaging.MESH_ENDPOINTS_ENV
    assert messaging_env.MESH_ENDPOINTS_FILE_ENV == mesh_file.MESH_ENDPOINTS_FILE_ENV


def test_move_service_switches_enablement_and_mapping(split):
    new = change_topology(split, [TopologyChange("move-service", "bannou-main", services=("auth",))])
    auth, main = new.node("bannou-auth"), new.node("bannou-main")
    assert new.mappings["auth"] == "bannou" and new.mappings["account"] == "bannou-auth"
    assert "auth" not in enabled_services(auth.environment) and "account" in enabled_services(
        auth.environment
    )
    assert "auth" in enabled_services(main.environment)
    assert split.mappings["auth"] == "bannou-auth"  # the input is unchanged


def test_add_node_models_the_main_node_and_enables_only_its_services(split):
    new = change_topology(
        split,
        [
            {
                "action": "add-node",
                "nodeConfig": {"name": "chat", "services": ["chat"], "replicas": 2, "appId": "c"},
            }
        ],
    )
    node = new.node("chat")
    main = split.node("bannou-main")
    assert (node.app_id, node.replicas, node.command, node.ports) == ("c", 2, main.command, main.ports)
    assert node.depends_on == main.depends_on  # starts after redis and rabbitmq
    assert enabled_services(node.environment) == ["state", "messaging", "mesh", "telemetry", "chat"]
    assert new.mappings["chat"] == "c"


def test_remove_node_drops_its_mappings_and_dependencies(split):
    new = change_topology(split, [{"action": "remove-node", "nodeName": "bannou-auth"}])
    assert "bannou-auth" not in new.node_names and "auth" not in new.mappings
    with pytest.raises(ChangeError, match="last bannou node"):
        change_topology(new, [{"action": "remove-node", "nodeName": "bannou-main"}])


def test_update_env_without_node_changes_every_bannou_node(split):
    new = change_topology(split, [{"action": "update-env", "environment": {"A": 1}}])
    assert all(n.environment["A"] == "1" for n in new.bannou_nodes)
    assert all("A" not in n.environment for n in new.infrastructure)


def test_changes_apply_in_order_and_fail_as_a_whole(split):
    new = change_topology(
        split,
        [
            {"action": "add-node", "nodeConfig": {"name": "x"}},
            {"action": "scale", "nodeName": "x", "replicas": 3},
        ],
    )
    assert new.node("x").replicas == 3
    with pytest.raises(ChangeError, match="no topology change given"):
        change_topology(split, [])


def test_topology_json_round_trip(split):
    changed = change_topology(split, [{"action": "scale", "nodeName": "bannou-auth", "replicas": 2}])
    for t in (split, changed):
        back = topology_from_json(topology_to_json(t))
        assert back.nodes == t.nodes and dict(back.mappings) == dict(t.mappings)


def test_injection_local_and_container_backends(split, tmp_path):
    m = messaging_env.EnvMessaging(messaging_env.MessagingSettings(heartbeat_interval=0.5), tmp_path)
    m.broker_url = "amqp://guest:guest@127.0.0.1:5999/%2F"
    local = m.inject("local", split)
    main = local.node("bannou-main").environment
    assert main["BANNOU_AMQP_URL"] == m.broker_url and main["BANNOU_HEARTBEAT_INTERVAL"] == "0.5"
    assert main["BANNOU_MESH_ENDPOINTS_FILE"] == str(tmp_path / "mesh-endpoints")
    assert "BANNOU_AMQP_URL" not in local.node("rabbitmq").environment
    compose = m.inject("compose", split).node("bannou-auth").environment
    assert compose["BANNOU_AMQP_URL"] == "amqp://guest:guest@rabbitmq:5672/%2F"
    assert (
        compose["BANNOU_MESH_ENDPOINTS"] == "bannou=http://bannou-main:80,bannou-auth=http://bannou-auth:80"
    )
    assert (
        messaging.parse_mesh_endpoints(compose["BANNOU_MESH_ENDPOINTS"])["bannou-auth"]
        == "http://bannou-auth:80"
    )


def test_endpoints_file_is_reread_when_it_changes_and_keeps_the_last_good(tmp_path):
    path = tmp_path / "mesh"
    reader = mesh_file.EndpointsFile(path)
    assert reader.read() == {}
    mesh_file.write_endpoints(path, {"a": "http://127.0.0.1:1"})
    assert reader.read() == {"a": "http://127.0.0.1:1"}
    mesh_file.write_endpoints(path, {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:22"})
    assert reader.read()["b"] == "http://127.0.0.1:22"
    path.write_text("garbage without equals sign, longer than before")
    assert reader.read()["b"] == "http://127.0.0.1:22"


# --- live changes go through the preset validation (issue 12, point 8) ---------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"action": "add-node", "nodeConfig": {"name": "../../x"}},
            "nodeConfig: `name`: invalid name '../../x'",
        ),
        (
            {"action": "add-node", "nodeName": "a" * 64},
            "nodeConfig: `name`: string should have at most 63 characters",
        ),
        (
            {"action": "add-node", "nodeConfig": {"name": "x", "environment": {"A": "1\x002"}}},
            "nodeConfig: `environment.A` contains a NUL character",
        ),
        (
            {"action": "add-node", "nodeConfig": {"name": "x", "layers": ["Nope"]}},
            "nodeConfig: unknown layer 'Nope'",
        ),
        (
            {"action": "add-node", "nodeConfig": {"name": "x", "replicas": True}},
            "replicas must be a whole number >= 0, got True",
        ),
        ({"action": "add-node", "nodeConfig": "str"}, "nodeConfig must be an object"),
        (
            {"action": "update-env", "nodeName": "bannou-main", "environment": {"A=B": "1"}},
            "environment: environment key 'A=B' contains `=`",
        ),
        (
            {"action": "update-env", "environment": {"A": "x\x00"}},
            "environment: `environment.A` contains a NUL character",
        ),
        (
            {"action": "update-env", "nodeName": "bannou-main", "environment": {"A": {"nested": 1}}},
            "environment: `environment.A` should be a valid string, got a mapping",
        ),
    ],
)
def test_live_changes_get_the_preset_validation(split, change, fragment):
    with pytest.raises(ChangeError) as err:
        change_topology(split, [change])
    assert fragment in err.value.message, err.value.message
    assert err.value.message.endswith("nothing was applied")


# --- configuration versions (issue 15 point 5) --------------------------------------------------


def test_every_version_records_time_changes_and_keys_and_a_rollback_is_a_new_version(split):
    history = History.start(split, timestamp=1000.0)
    assert history.detail(1) == ConfigVersion(1, 1000.0, ("deploy msg-split",), ())
    secret = {
        "action": "update-env",
        "nodeName": "bannou-auth",
        "environment": {"AUTH_JWT_SECRET": "hunter22"},
    }
    two = change_topology(split, [secret])
    entry = history.record(two, [TopologyChange.from_dict(secret).describe()], timestamp=1001.0)
    assert entry == ConfigVersion(
        2,
        1001.0,
        ("update-env bannou-auth AUTH_JWT_SECRET=******",),
        ("nodes.bannou-auth.environment.AUTH_JWT_SECRET",),
    )
    three = change_topology(two, [{"action": "scale", "nodeName": "bannou-main", "replicas": 2}])
    history.record(three, ["scale bannou-main replicas=2"])
    assert history.detail(3).changed_keys == ("nodes.bannou-main.replicas",)
    # bannou's default target: currentVersion - 1; the rollback is recorded as version 4
    assert history.rollback_target(None, "environment 'e'") == 2
    back = history.record(history.topology(1), ["rollback to configuration version 1"])
    assert back.version == 4 and history.current == 4 and history.numbers == [1, 2, 3, 4]
    assert set(back.changed_keys) == {
        "nodes.bannou-auth.environment.AUTH_JWT_SECRET",
        "nodes.bannou-main.replicas",
    }
    lines = history.lines()
    assert len(lines) == 4 and lines[-1].startswith("*   4  ") and lines[-1].endswith("(current)")
    assert "hunter22" not in "\n".join(lines)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (9, "environment 'e' has no configuration version 9; versions: 1, 2 (current 2)"),
        (0, "environment 'e' has no configuration version 0; versions: 1, 2 (current 2)"),
        ("2", "environment 'e' has no configuration version '2'; versions: 1, 2 (current 2)"),
        (2, "environment 'e' is at configuration version 2 already; versions: 1, 2"),
    ],
)
def test_a_rollback_to_a_version_that_is_not_there_names_the_versions(split, version, expected):
    history = History.start(split)
    history.record(
        change_topology(split, [{"action": "scale", "nodeName": "bannou-main", "replicas": 2}]), ["s"]
    )
    with pytest.raises(ChangeError) as err:
        history.rollback_target(version, "environment 'e'")
    assert err.value.message == expected


def test_nothing_to_roll_back_at_the_first_version(split):
    with pytest.raises(ChangeError, match="at configuration version 1, its first: nothing to roll back"):
        History.start(split).rollback_target(None, "environment 'e'")


def test_versions_survive_the_run_directory_and_old_files_still_load(split, tmp_path: Path):
    history = History.start(split, timestamp=1000.0)
    history.record(change_topology(split, [{"action": "remove-node", "nodeName": "bannou-auth"}]), ["remove"])
    save_history(tmp_path, history)
    again = load_history(tmp_path)
    assert again is not None and again.numbers == [1, 2] and again.details == history.details
    assert again.topology(2) == history.topology(2)
    # a live.json written before versions recorded their time: still read, shown without it
    data = json.loads((tmp_path / "live.json").read_text())
    del data["config_versions"]
    (tmp_path / "live.json").write_text(json.dumps(data))
    old = load_history(tmp_path)
    assert old is not None and old.numbers == [1, 2] and old.details == {}
    assert old.lines()[1] == "*   2  (time not recorded)  (not recorded)  (current)"
    assert old.rollback_target(None, "environment 'e'") == 1


def test_a_kept_messaging_run_is_compared_with_what_it_deployed_not_the_bare_preset(split, tmp_path):
    # version 1 of a messaging run holds what the session added to every node (broker URL,
    # peers): compared with the bare preset it always looked changed, and --bannou-reuse threw
    # every kept BANNOU_INFRA run away
    m = messaging_env.EnvMessaging(messaging_env.MessagingSettings(amqp_url="amqp://u:p@127.0.0.1:1/"))
    deployed = m.inject("compose", split)
    assert deployed != split  # the additions this is about
    history = History.start(deployed)
    save_history(tmp_path, history)
    assert changed_since_kept(tmp_path) == ""
    changed = change_topology(deployed, [TopologyChange("scale", "bannou-auth", replicas=2)])
    history.record(changed, ["scale bannou-auth replicas=2"])
    save_history(tmp_path, history)
    assert changed_since_kept(tmp_path) == "configuration version 2: scale bannou-auth replicas=2"
    history.record(deployed, ["rollback to configuration version 1"])  # the preset's again
    save_history(tmp_path, history)
    assert changed_since_kept(tmp_path) == ""
    (tmp_path / "live.json").write_text('{"history": [[1, {"nodes": 3}]]}')
    assert "cannot be read" in changed_since_kept(tmp_path)
