"""An operator's file is looked at again only after a short while (file_stamp.py)."""

from __future__ import annotations

from pathlib import Path

from acct2crm.file_stamp import FileStamp
from acct2crm.scope_file import ScopeWatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_edit_is_seen_once_the_recheck_time_has_passed(tmp_path: Path) -> None:
    path = tmp_path / "scope.toml"
    clock = Clock()
    stamp = FileStamp(path, every_s=0.05, clock=clock)
    assert stamp.read() is None  # no file yet
    path.write_text("branches = ['HQ']\n")
    assert stamp.read() is None  # looked at 0 s ago: not again yet
    clock.now += 0.05
    first = stamp.read()
    assert first is not None
    path.write_text("branches = ['HQ', 'HN']\n")  # a different size
    clock.now += 0.01
    assert stamp.read() == first
    clock.now += 0.04
    assert stamp.read() not in (None, first)
    path.unlink()
    clock.now += 0.05
    assert stamp.read() is None


def test_a_scope_edit_is_in_force_for_the_next_change_after_the_recheck(tmp_path: Path) -> None:
    path = tmp_path / "scope.toml"
    watcher = ScopeWatcher(path, every_s=0)
    assert watcher.current().describe() == ScopeWatcher(tmp_path / "none.toml").current().describe()
    path.write_text('branches = ["HQ"]\n')
    assert "HQ" in watcher.current().describe()
