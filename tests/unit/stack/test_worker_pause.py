"""The workers around a rewind (``replay``, ``positions rebase``): all of them stop, all
of them start again, even when the rewind is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import acct2crm.local_stack
from acct2crm.commands.common import with_worker_stopped
from acct2crm.errors import StackError
from acct2crm.settings import Settings
from devstack import plugin, python_services, workers


class _Stack:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop_worker(self, settings: Settings) -> bool:
        self.calls.append("stop")
        return True

    def start_worker(self, settings: Settings) -> None:
        self.calls.append("start")


def test_a_refused_rewind_still_starts_the_workers_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = _Stack()
    monkeypatch.setattr(acct2crm.local_stack, "find_local_stack", lambda: stack)

    def refused() -> None:
        raise StackError("the worker is running")

    with pytest.raises(StackError):
        with_worker_stopped(Settings(home=tmp_path), refused)
    assert stack.calls == ["stop", "start"]
    assert with_worker_stopped(Settings(home=tmp_path), lambda: None)
    assert stack.calls == ["stop", "start", "stop", "start"]


def test_the_stack_stops_and_starts_its_extra_workers_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[int] = []
    stopped: list[int] = []

    def start_extra(settings: Settings, index: int) -> int:
        started.append(index)
        return index

    def start_one(settings: Settings, paths: object) -> int:
        started.append(1)
        return 1

    def stop(pid: int) -> bool:
        stopped.append(pid)
        return True

    monkeypatch.setattr(workers, "stop_extra",
                        lambda settings, echo: ["worker-3", "worker-2"])
    monkeypatch.setattr(workers, "start_extra", start_extra)
    monkeypatch.setattr(python_services, "start_worker", start_one)
    monkeypatch.setattr(plugin, "read_pid", lambda path: 4242)
    monkeypatch.setattr(plugin, "stop", stop)
    stack = plugin.DevStack()
    settings = Settings(home=tmp_path)
    assert stack.stop_worker(settings)
    assert stopped == [4242]
    stack.start_worker(settings)
    assert started == [1, 2, 3]
    stack.start_worker(settings)  # a later start without a stop: worker 1 alone
    assert started == [1, 2, 3, 1]


def test_an_extra_worker_has_its_own_port_and_table_folder(tmp_path: Path) -> None:
    second = workers.worker_settings(Settings(home=tmp_path), 2)
    assert second.worker_data_dir == tmp_path / "worker-2" / "data"
    assert second.worker_port == Settings(home=tmp_path).worker_port + 1
