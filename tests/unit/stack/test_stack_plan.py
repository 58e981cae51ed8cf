"""Which services ``up --only`` starts: the chosen ones and what they cannot run without."""

from __future__ import annotations

import pytest

from acct2crm.errors import StackError
from devstack.lifecycle import SERVICE_NAMES, wanted_services


def test_everything_by_default_and_no_worker_when_asked() -> None:
    assert wanted_services(None) == set(SERVICE_NAMES)
    assert wanted_services(None, with_worker=False) == set(SERVICE_NAMES) - {"worker"}


def test_a_part_brings_what_it_needs() -> None:
    assert wanted_services(["postgres", "crm"]) == {"postgres", "crm"}
    assert wanted_services(["connect"]) == {"connect", "postgres", "kafka"}
    assert wanted_services(["worker"]) == set(SERVICE_NAMES)


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(StackError, match="postgress"):
        wanted_services(["postgress"])
