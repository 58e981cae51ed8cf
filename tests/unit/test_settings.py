"""Settings an operator can trust: one name per setting in env and file, env > file >
default, and a bad key or value stops the command with the key, its source and what is
allowed (never a silent default)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct2crm.cli import app
from acct2crm.errors import ConfigError
from acct2crm.settings import Settings, reset_settings, shown_dsn
from acct2crm.settings_origins import origins, unknown_env_names
from devstack.python_services import settings_env

FILE_ENDPOINTS = {
    "crm_url": "http://10.9.9.9:1234",
    "kafka_bootstrap": "kafka-a.example.com:9092,kafka-b.example.com:9092",
    "connect_url": "https://connect.example.com:8083",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No ACCT2CRM_* variable but a home of our own (no config file there); the folder."""
    for key in list(os.environ):
        if key.upper().startswith("ACCT2CRM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ACCT2CRM_HOME", str(tmp_path))
    reset_settings()
    yield tmp_path
    reset_settings()


def write_config(
    monkeypatch: pytest.MonkeyPatch, folder: Path, text: str, name: str = "acct2crm.toml"
) -> Path:
    path = folder / name
    path.write_text(text)
    monkeypatch.setenv("ACCT2CRM_CONFIG", str(path))
    return path


def toml(values: dict[str, object]) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


# ------------------------------------------------------------------ precedence
def test_defaults_are_the_local_stack(clean_env: Path) -> None:
    settings = Settings()
    assert settings.crm_url == f"http://127.0.0.1:{settings.crm_port}"
    assert settings.kafka_bootstrap == f"127.0.0.1:{settings.kafka_port}"
    assert settings.connect_url == f"http://127.0.0.1:{settings.connect_port}"
    assert not any(settings.configured(name) for name in FILE_ENDPOINTS)
    assert set(origins(settings).values()) == {("default", None)} | {
        ("env", "ACCT2CRM_HOME")
    }


def test_each_endpoint_in_the_file_is_honoured(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(monkeypatch, clean_env, toml({**FILE_ENDPOINTS, "crm_timeout_s": 3.0}))
    settings = Settings()
    for name, value in FILE_ENDPOINTS.items():
        assert getattr(settings, name) == value
        assert settings.configured(name), f"{name} from the file must count as external"
        assert origins(settings)[name] == ("file", str(path))
    assert settings.crm_timeout_s == 3.0


def test_the_default_file_in_home_is_read(clean_env: Path) -> None:
    (clean_env / "acct2crm.toml").write_text('crm_url = "http://10.1.1.1:80"\n')
    assert Settings().crm_url == "http://10.1.1.1:80"


def test_env_overrides_file_which_overrides_default(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        monkeypatch, clean_env,
        toml({"crm_url": "http://file-crm:1", "crm_timeout_s": 3.0, "crm_port": 40000}),
    )
    monkeypatch.setenv("ACCT2CRM_CRM_URL", "http://env-crm:2")
    monkeypatch.setenv("ACCT2CRM_CRM_TIMEOUT_S", "4.5")
    settings = Settings()
    assert settings.crm_url == "http://env-crm:2"
    assert settings.crm_timeout_s == 4.5
    assert settings.crm_port == 40000
    assert settings.crm_max_concurrency == Settings.model_fields["crm_max_concurrency"].default
    found = origins(settings)
    assert found["crm_url"] == ("env", "ACCT2CRM_CRM_URL")
    assert found["crm_timeout_s"] == ("env", "ACCT2CRM_CRM_TIMEOUT_S")
    assert found["crm_port"] == ("file", str(path))
    assert found["crm_max_concurrency"] == ("default", None)


def test_a_port_in_the_file_moves_the_derived_endpoint(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(monkeypatch, clean_env, "crm_port = 41000\nkafka_port = 41001\n")
    settings = Settings()
    assert settings.crm_url == "http://127.0.0.1:41000"
    assert settings.kafka_bootstrap == "127.0.0.1:41001"
    assert not settings.configured("crm_url")


# ---------------------------------------------------------------- bad input
def test_a_misspelt_key_stops_with_the_key_the_file_and_the_right_name(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(monkeypatch, clean_env, 'crm_ulr = "http://10.9.9.9:1234"\n')
    with pytest.raises(ConfigError) as caught:
        Settings()
    message = str(caught.value)
    assert "crm_ulr" in message
    assert str(path) in message
    assert "did you mean 'crm_url'" in message


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("crm_url", "10.9.9.9:1234", "http:// or https://"),
        ("connect_url", "ftp://connect", "http:// or https://"),
        ("kafka_bootstrap", "kafka", "host:port"),
        ("crm_timeout_s", -1.0, "greater than 0"),
        ("pg_port", 70000, "less than or equal to 65535"),
        ("sink_batch_size", 0, "greater than or equal to 1"),
    ],
)
def test_a_bad_value_in_the_file_stops_with_key_file_and_what_is_allowed(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: object, allowed: str
) -> None:
    path = write_config(monkeypatch, clean_env, toml({key: value}))
    with pytest.raises(ConfigError) as caught:
        Settings()
    message = str(caught.value)
    assert key in message and str(path) in message and allowed in message


def test_a_bad_env_value_names_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCT2CRM_CRM_URL", "crm.example.com")
    with pytest.raises(ConfigError, match=r"ACCT2CRM_CRM_URL.*http:// or https://"):
        Settings()


def test_a_bad_secret_is_reported_without_its_value(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(monkeypatch, clean_env, "crm_token = [\"not-a-string-s3cret\"]\n")
    with pytest.raises(ConfigError, match="crm_token") as caught:
        Settings()
    assert "s3cret" not in str(caught.value)


def test_a_missing_named_config_file_is_an_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCT2CRM_CONFIG", str(clean_env / "nope.toml"))
    with pytest.raises(ConfigError, match=r"ACCT2CRM_CONFIG.*nope\.toml"):
        Settings()


def test_invalid_toml_names_the_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(monkeypatch, clean_env, "crm_url = \n")
    with pytest.raises(ConfigError, match=f"{path}.*not valid TOML"):
        Settings()


def test_the_projects_own_variables_are_not_settings_and_do_not_fail(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("ACCT2CRM_TEST_PORT_OFFSET", "ACCT2CRM_TEST_HOME", "ACCT2CRM_KEEP_STACK"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setenv("ACCT2CRM_CRM_URLL", "http://typo")
    Settings()
    assert unknown_env_names() == ["ACCT2CRM_CRM_URLL"]


# -------------------------------------------------------------- derived values
def test_the_local_dsn_carries_the_url_encoded_password(clean_env: Path) -> None:
    settings = Settings(pg_password="p@ss:w/rd")
    assert settings.postgres_dsn == "postgresql://acct2crm:p%40ss%3Aw%2Frd@127.0.0.1:55432/accounting"


def test_a_remote_dsn_carries_no_password(clean_env: Path) -> None:
    settings = Settings(pg_host="db.example.com", pg_password="remote-s3cret")
    assert settings.postgres_dsn == "postgresql://acct2crm@db.example.com:55432/accounting"


def test_a_dsn_in_text_shows_only_the_local_stacks_own_password(clean_env: Path) -> None:
    local = Settings().postgres_dsn
    assert shown_dsn(local) == local
    assert "acct2crm-local" in local
    tunnel = Settings(pg_password="p@ss:w/rd").postgres_dsn  # a loopback tunnel to a real one
    assert shown_dsn(tunnel) == "postgresql://acct2crm:****@127.0.0.1:55432/accounting"
    remote = Settings(pg_host="db.example.com", pg_password="remote-s3cret").postgres_dsn
    assert shown_dsn(remote) == remote


def test_children_inherit_configured_endpoints_only(clean_env: Path) -> None:
    local = settings_env(Settings())
    assert "ACCT2CRM_CRM_URL" not in local and "ACCT2CRM_KAFKA_BOOTSTRAP" not in local
    remote = settings_env(Settings(crm_url="http://crm.example.com"))
    assert remote["ACCT2CRM_CRM_URL"] == "http://crm.example.com"


def child_setting(env: dict[str, str], name: str, cwd: Path) -> str:
    """A setting as a child of the stack reads it: in its own folder, this environment."""
    done = subprocess.run(
        [sys.executable, "-c",
         f"from acct2crm.settings import Settings; print(Settings().{name})"],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd, check=True,
    )
    return done.stdout.strip()


def test_a_child_reads_the_config_file_itself_so_an_edit_reaches_its_next_start(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(monkeypatch, clean_env, toml({"log_level": "debug", "crm_timeout_s": 5.0}))
    handed = settings_env(Settings())
    assert handed == {"ACCT2CRM_CONFIG": str(path.resolve())}  # the file's values stay in it
    path.write_text(toml({"log_level": "warning", "crm_timeout_s": 5.0}))  # edited after `up`
    child = clean_env / "worker"
    child.mkdir()
    assert child_setting({**os.environ, **handed}, "log_level", child) == "warning"


def test_a_child_gets_what_it_could_not_find_itself(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(clean_env)
    given = Settings(worker_port=51234, scope_file=Path("scopes/acme.toml"))
    moved = given.model_copy(update={"crm_timeout_s": 3.5})  # as `up --workers` makes its own
    handed = settings_env(moved)
    assert handed["ACCT2CRM_WORKER_PORT"] == "51234" and handed["ACCT2CRM_CRM_TIMEOUT_S"] == "3.5"
    # a relative path, made absolute: the child runs in a folder of its own
    assert handed["ACCT2CRM_SCOPE_FILE"] == str(clean_env / "scopes" / "acme.toml")
    assert "ACCT2CRM_LOG_LEVEL" not in handed and "ACCT2CRM_CONFIG" not in handed
    child = clean_env / "worker"
    child.mkdir()
    env = {**os.environ, **handed}
    assert child_setting(env, "scope_file", child) == str(clean_env / "scopes" / "acme.toml")
    assert child_setting(env, "worker_port", child) == "51234"


# ---------------------------------------------------------------- the command
def test_config_show_json_gives_sources_and_masks_secrets(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "file-token-s3cret-0123456789"
    path = write_config(
        monkeypatch, clean_env, toml({**FILE_ENDPOINTS, "crm_token": token, "crm_port": 40000})
    )
    monkeypatch.setenv("ACCT2CRM_CRM_PORT", "40001")
    monkeypatch.setenv("ACCT2CRM_PG_PASSWORD", "env-pg-s3cret")

    result = CliRunner().invoke(app, ["config", "show", "--json"])

    assert result.exit_code == 0, result.output
    assert token not in result.output and "env-pg-s3cret" not in result.output
    report = json.loads(result.output)
    rows = report["settings"]
    assert report["config_file"] == str(path)
    for name, value in FILE_ENDPOINTS.items():
        assert rows[name] == {"value": value, "source": "file", "detail": str(path),
                              "secret": False}
    assert rows["crm_token"]["source"] == "file" and rows["crm_token"]["secret"]
    assert rows["crm_port"] == {"value": 40001, "source": "env", "detail": "ACCT2CRM_CRM_PORT",
                                "secret": False}
    assert rows["pg_password"]["source"] == "env"
    assert rows["crm_timeout_s"]["source"] == "default"
    assert "from env ACCT2CRM_PG_PASSWORD" in report["notes"][0]


def test_config_show_says_where_a_remote_password_comes_from(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCT2CRM_PG_HOST", "db.example.com")
    monkeypatch.setenv("ACCT2CRM_PG_PASSWORD", "remote-s3cret")

    result = CliRunner().invoke(app, ["config", "show"])

    assert result.exit_code == 0, result.output
    assert "remote-s3cret" not in result.output
    assert "the password is pg_password, from env ACCT2CRM_PG_PASSWORD" in result.output


def test_config_show_says_which_rule_files_are_absent(clean_env: Path) -> None:
    (clean_env / "scope.toml").write_text("customers_only = false\n")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    [scope] = [line for line in result.output.splitlines() if "scope_file_in_force" in line]
    [mapping] = [line for line in result.output.splitlines() if "mapping_file_in_force" in line]
    assert scope.endswith(str(clean_env / "scope.toml"))
    assert mapping.endswith("mapping.toml  (absent: defaults)")
    [tenants] = [line for line in result.output.splitlines() if "tenants_file_in_force" in line]
    assert tenants.endswith("tenants.toml  (absent: defaults)")  # the default tenant alone


def test_config_show_says_a_tunnelled_password_is_masked_in_text(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCT2CRM_PG_PASSWORD", "tunnel-s3cret")

    result = CliRunner().invoke(app, ["config", "show", "--json"])

    assert result.exit_code == 0, result.output
    assert "tunnel-s3cret" not in result.output
    assert json.loads(result.output)["notes"][0] == (
        "postgres_dsn (acct2crm status --json) carries the password, from env "
        "ACCT2CRM_PG_PASSWORD; the text form masks it, as it is not the local stack's own"
    )


def test_a_bad_config_is_one_line_and_exit_code_2(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(monkeypatch, clean_env, 'crm_url = "crm.example.com"\n')
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", "status"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ), check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "crm_url" in lines[0] and str(path) in lines[0] and "http://" in lines[0]


def test_the_tenant_settings_are_known_to_the_file_and_to_config_show(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = clean_env / "companies.toml"
    path = write_config(monkeypatch, clean_env,
                        toml({"tenants_file": str(registry), "change_partitions": 12}))
    settings = Settings()
    assert settings.effective_tenants_file == registry and settings.change_partitions == 12
    assert origins(settings)["tenants_file"] == ("file", str(path))
    assert origins(settings)["change_partitions"] == ("file", str(path))
