"""Secrets the key rule missed (issue 12 point 5): inside URLs, connection strings, command
lines, compound key names, and values shorter than 3 characters."""

from __future__ import annotations

import pytest

from pytest_bannou._support import masking
from pytest_bannou._support.masking import MASK, is_secret_key, mask_data, mask_environment, mask_text


@pytest.mark.parametrize("key", ["ADMINPASSWORD", "SSH_PRIVATEKEY", "AUTH_PASS", "GIT_CREDS", "db_creds"])
def test_compound_and_short_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["KEYCLOAK_URL", "MONKEY", "TOKENIZER_MODE", "BYPASS_CACHE", "COMPASS_URL"])
def test_readable_keys_stay_readable(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("postgres://u:s3cretpw@db:5432/x", f"postgres://u:{MASK}@db:5432/x"),
        ("redis://:pw@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("amqp://guest:guestpw@rabbit:5672/%2F", f"amqp://guest:{MASK}@rabbit:5672/%2F"),
        (
            "Server=db;User Id=sa;Password=Pa55;Encrypt=true",
            f"Server=db;User Id=sa;Password={MASK};Encrypt=true",
        ),
        ("Server=db;Uid=sa;Pwd=x1;", f"Server=db;Uid=sa;Pwd={MASK};"),
        ("run --user=bob --password=hunter2 --verbose", f"run --user=bob --password={MASK} --verbose"),
        ("http://example.com/health", "http://example.com/health"),
    ],
)
def test_secrets_inside_values_are_masked_in_mappings_and_text(value, masked):
    assert mask_environment({"CONNECTION": value}) == {"CONNECTION": masked}
    assert mask_text(f"starting with {value} now", set()) == f"starting with {masked} now"


def test_secrets_inside_values_are_masked_where_they_appear_alone():
    env = {"DATABASE_URL": "postgres://u:s3cretpw@db/x", "CONN": "Server=db;Password=Pa55w0rd;"}
    found = masking.secret_values(env)
    assert {"s3cretpw", "Pa55w0rd"} <= found
    assert mask_text("auth failed for s3cretpw and Pa55w0rd", found) == f"auth failed for {MASK} and {MASK}"


def test_short_values_are_masked_in_mappings_always():
    assert mask_environment({"DB_PASSWORD": "1", "ADMINPASSWORD": "ab"}) == {
        "DB_PASSWORD": MASK,
        "ADMINPASSWORD": MASK,
    }
    assert mask_data({"env": {"API_TOKEN": "x", "PORT_KEY": 7}}, set()) == {
        "env": {"API_TOKEN": MASK, "PORT_KEY": MASK}
    }


def test_short_values_are_masked_in_text_where_they_are_a_secret_value():
    text = 'DB_PASSWORD=1 {"api_token": "z9"} AUTH_PASS: ab redis://:p@h --password=q'
    assert mask_text(text, set()) == (
        f'DB_PASSWORD={MASK} {{"api_token": "{MASK}"}} AUTH_PASS: {MASK} redis://:{MASK}@h --password={MASK}'
    )


def test_short_values_do_not_mask_unrelated_text():
    found = masking.secret_values({"DB_PASSWORD": "1"})
    text = "1 passed, 1 warning in 1.0s; x=1; the password: see the docs"
    assert mask_text(text, found) == text
    assert mask_text("monolith[env:DB_PASSWORD=1]", found) == f"monolith[env:DB_PASSWORD={MASK}]"


def test_a_masked_value_with_its_hash_is_left_as_it_is():
    # derived environment keys carry "******#<hash>" so that two secrets stay two environments
    text = "deploying alpha[env:DB_PASSWORD=******#1a2b3c] and DB_PASSWORD=s3"
    assert mask_text(text, []) == "deploying alpha[env:DB_PASSWORD=******#1a2b3c] and DB_PASSWORD=******"


def test_bannou_test_set_up_secrets_are_masked():
    """What bannou's .env.test.* files hold (issue 15): JWT secret, passwords, salts, API keys
    and the MySQL connection string's password."""
    env = {
        "AUTH_JWT_SECRET": "ci-edge-test-jwt-secret-key-2025",
        "ADMIN_PASSWORD": "admin-test-password-2025",
        "CONNECT_SERVER_SALT": "ci-edge-test-server-salt",
        "AUTH_STEAM_API_KEY": "test-steam-api-key",
        "STATE_MYSQL_CONNECTION_STRING": "Server=mysql;Port=3306;Database=bannou;User=guest;Password=pw-9;",
        "ADMIN_USERNAME": "admin@admin.test.local",
    }
    masked = mask_environment(env)
    assert masked["STATE_MYSQL_CONNECTION_STRING"].endswith(f"Password={MASK};")
    assert {k for k, v in masked.items() if v == MASK} == set(env) - {
        "STATE_MYSQL_CONNECTION_STRING",
        "ADMIN_USERNAME",
    }
    assert masked["ADMIN_USERNAME"] == "admin@admin.test.local"
    found = masking.secret_values(env)
    text = "login admin with admin-test-password-2025, salt ci-edge-test-server-salt, db pw-9"
    assert mask_text(text, found) == f"login admin with {MASK}, salt {MASK}, db {MASK}"


def test_an_empty_secret_does_not_take_the_next_line_with_it():
    text = "  MYSQL_ROOT_PASSWORD=\n  MYSQL_USER=guest-user\n  password:\n  next: line"
    assert masking.mask_inline(text).splitlines() == [
        "  MYSQL_ROOT_PASSWORD=",
        "  MYSQL_USER=guest-user",
        "  password:",
        "  next: line",
    ]
    assert masking.mask_inline("PASSWORD = hunter22") == f"PASSWORD = {MASK}"
