"""The CRM token never travels in clear: plain http only to loopback, or when allowed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from acct2crm.crm.client import CrmClient
from acct2crm.crm.url_check import check_crm_url
from acct2crm.errors import ConfigError
from acct2crm.settings import Settings


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.com",
        "https://10.0.0.5:8443/api-root",
        "http://127.0.0.1:58080",
        "http://127.8.9.10",
        "http://localhost:58080",
        "http://LOCALHOST.",
        "http://crm.localhost",
        "http://[::1]:58080",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    check_crm_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example.com",
        "http://10.0.0.5:8080",
        "http://[2001:db8::1]/",
        "http://crm:58080",
        "http://localhost.example.com",
        "http://127.0.0.1.example.com",
    ],
)
def test_plain_http_to_another_host_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ConfigError, match="crm_allow_insecure_http"):
        check_crm_url(url)
    check_crm_url(url, allow_insecure_http=True)


@pytest.mark.parametrize("url", ["ftp://crm.example.com", "crm.example.com", "http://"])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        check_crm_url(url, allow_insecure_http=True)


async def test_connect_refuses_before_any_request() -> None:
    with pytest.raises(ConfigError):
        CrmClient.connect("http://crm.example.com", "secret-token")
    client = CrmClient.connect("http://crm.example.com", "t", allow_insecure_http=True)
    await client.aclose()


def test_the_setting_is_off_by_default() -> None:
    assert Settings.model_fields["crm_allow_insecure_http"].default is False


def test_the_worker_refuses_to_start_with_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PATH": "/usr/bin:/bin",
        "ACCT2CRM_HOME": str(tmp_path),
        "ACCT2CRM_CRM_URL": "http://crm.example.com",
        "ACCT2CRM_CRM_TOKEN": "secret-token",
    }
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", "worker"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert done.returncode == 1
    assert "crm_allow_insecure_http" in done.stderr
    assert "Traceback" not in done.stderr
    assert "secret-token" not in done.stderr + done.stdout
