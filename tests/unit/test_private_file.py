"""Files written for the operator: whole, and readable by their owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from acct2crm.private_file import write_private
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.scope_file import write_scope


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_written_over_one_anybody_could_read_is_its_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "paused.json"
    path.parent.mkdir()
    path.write_text("{}\n")
    path.chmod(0o644)  # as an editor or an older release left it
    (path.parent / "paused.json.tmp").write_text("half")  # a crash's leftover
    (path.parent / "paused.json.tmp").chmod(0o666)
    write_private(path, '{"acme": 1.0}\n')
    assert path.read_text() == '{"acme": 1.0}\n'
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["paused.json"]


def test_a_missing_folder_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "scopes" / "acme.toml"
    write_scope(path, DEFAULT_SCOPE)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert path.read_text().startswith("# acct2crm sync scope")
