"""The tenant registry: the default tenant from the settings, others from the operator's
TOML file, tokens from a secret file or an env var (never printed), a broken edit keeps
the last good registry."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from acct2crm.errors import ConfigError
from acct2crm.settings import Settings
from acct2crm.tenants import TenantWatcher, read_registry, upsert_tenant_entry


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, crm_token="default-secret")


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # a new mtime even within the file system's timestamp resolution
    stamp = time.time() + len(text) % 7 + 1
    os.utime(path, (stamp, stamp))


def test_default_tenant_is_todays_settings(tmp_path: Path) -> None:
    registry = read_registry(_settings(tmp_path))
    assert list(registry.tenants) == ["default"]
    tenant = registry.tenants["default"]
    assert tenant.database == "accounting"
    assert tenant.crm_token.get_secret_value() == "default-secret"
    assert tenant.topic_prefix == "acct2crm"
    assert tenant.connector == "acct2crm-accounting-customer"
    assert registry.by_database("accounting") is tenant


def test_entry_defaults_and_token_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    secret = tmp_path / "acme.token"
    secret.write_text("acme-secret\n")
    _write(settings.effective_tenants_file,
           f'[tenants.acme]\ncrm_token_file = "{secret}"\n')
    acme = read_registry(settings).tenants["acme"]
    assert acme.database == "accounting_acme"
    assert acme.crm_url == settings.crm_url
    assert acme.crm_token.get_secret_value() == "acme-secret"
    assert "acme-secret" not in repr(acme)
    assert acme.scope_file == tmp_path / "scopes" / "acme.toml"
    assert acme.slot == "acct2crm_customer_acme"
    assert acme.topic_prefix == "acct2crm.tenant.acme"
    assert read_registry(settings).by_database("accounting_acme") == acme


def test_token_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    monkeypatch.setenv("BETA_TOKEN", "beta-secret")
    _write(settings.effective_tenants_file,
           '[tenants.beta]\ncrm_token_env = "BETA_TOKEN"\ncrm_url = "https://crm.example.com/"\n'
           'database = "beta_books"\n')
    beta = read_registry(settings).tenants["beta"]
    assert beta.crm_token.get_secret_value() == "beta-secret"
    assert beta.crm_url == "https://crm.example.com"
    assert beta.database == "beta_books"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tenants."Bad-Id"]\ncrm_token_env = "X"\n', "tenant id"),
        ('[tenants.default]\ncrm_token_env = "X"\n', "built-in"),
        ('[tenants.a]\ncrm_token_env = "NOT_SET_ANYWHERE_42"\n', "not set"),
        ('[tenants.a]\n', "exactly one of"),
        ('[tenants.a]\ncrm_token_file = "/nonexistent/t"\n', "crm_token_file"),
        ('[tenants.a]\ncrm_token_env = "HOME"\ncolour = "red"\n', "unknown key"),
        ('[tenants.a]\ncrm_token_env = "HOME"\ndatabase = "accounting"\n', "share the database"),
        ('[tenants.a]\ncrm_token_env = "HOME"\ncrm_url = "ftp://x"\n', "crm_url"),
        ('tenants = 3\n', "table"),
        ('[tenants.a\n', "tenants file"),
    ],
)
def test_bad_entries_are_named(tmp_path: Path, text: str, message: str) -> None:
    settings = _settings(tmp_path)
    _write(settings.effective_tenants_file, text)
    with pytest.raises(ConfigError, match=message):
        read_registry(settings)


def test_watcher_adds_tenants_and_keeps_last_good(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path = settings.effective_tenants_file
    watcher = TenantWatcher(settings, every_s=0)
    assert set(watcher.current().tenants) == {"default"}
    _write(path, '[tenants.acme]\ncrm_token_env = "HOME"\n')
    assert set(watcher.current().tenants) == {"default", "acme"}
    assert watcher.error is None
    _write(path, '[tenants.acme\ncrm_token_env = "HOME"\n')  # broken edit
    assert set(watcher.current().tenants) == {"default", "acme"}
    assert watcher.error is not None and "tenants file" in watcher.error
    _write(path, '[tenants.acme]\ncrm_token_env = "HOME"\n[tenants.b2]\ncrm_token_env = "HOME"\n')
    assert set(watcher.current().tenants) == {"default", "acme", "b2"}
    assert watcher.error is None


def test_upsert_adds_once_and_keeps_operator_edits(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert upsert_tenant_entry(path, "acme", {"crm_token_file": "/s/acme"})
    path.write_text(path.read_text().replace("/s/acme", "/operator/acme"))
    assert not upsert_tenant_entry(path, "acme", {"crm_token_file": "/s/acme"})
    assert upsert_tenant_entry(path, "b2", {"crm_token_file": "/s/b2"})
    text = path.read_text()
    assert "/operator/acme" in text and "/s/b2" in text
    with pytest.raises(ConfigError):
        upsert_tenant_entry(path, "NO", {})
