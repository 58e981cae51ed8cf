"""``status`` shows every tenant's connector: ``connectors`` in the JSON (``connector``
keeps meaning the default tenant's) and one text line per tenant's connector."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from acct2crm import connector_states
from acct2crm.connector_states import connector_lines, every_connector_state
from acct2crm.errors import ConnectError
from acct2crm.settings import Settings


def two_tenants(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path, crm_token="default-secret")
    secret = tmp_path / "t.token"
    secret.write_text("t-secret\n")
    path = settings.effective_tenants_file
    path.write_text(f'[tenants.ta]\ncrm_token_file = "{secret}"\n'
                    f'[tenants.tb]\ncrm_token_file = "{secret}"\n')
    stamp = time.time() + 1
    os.utime(path, (stamp, stamp))
    return settings


class FakeConnect:
    states: ClassVar[dict[str, str]] = {}

    def __init__(self, _url: str) -> None:
        pass

    def __enter__(self) -> FakeConnect:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def status(self, name: str) -> dict[str, Any] | None:
        if name not in self.states:
            return None
        return {"connector": {"state": self.states[name]},
                "tasks": [{"id": 0, "state": self.states[name]}]}


def test_every_tenants_connector_with_its_state_default_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = two_tenants(tmp_path)
    names = dict(connector_states.tenant_connector_names(settings))
    assert list(names) == ["default", "ta", "tb"]
    FakeConnect.states = {names["default"]: "RUNNING", names["ta"]: "FAILED"}
    monkeypatch.setattr(connector_states, "ConnectClient", FakeConnect)
    found = every_connector_state(settings)
    assert [(c["tenant"], c["name"], c["state"]) for c in found] == [
        ("default", names["default"], "RUNNING"),
        ("ta", names["ta"], "FAILED"),
        ("tb", names["tb"], "MISSING"),
    ]
    assert len({c["name"] for c in found}) == 3
    assert found[1]["tasks"] == [{"id": 0, "state": "FAILED"}]
    lines = connector_lines(found)
    assert lines[1] == "  connector ta FAILED task 0 FAILED"
    assert lines[2] == "  connector tb MISSING"


def test_connect_unreachable_is_one_entry_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down(FakeConnect):
        def status(self, name: str) -> dict[str, Any] | None:
            raise ConnectError("Connect did not answer")

    monkeypatch.setattr(connector_states, "ConnectClient", Down)
    [found] = every_connector_state(two_tenants(tmp_path))
    assert found["state"] == "UNREACHABLE" and "did not answer" in found["error"]
