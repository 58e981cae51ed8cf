"""The operator's sync-scope file: read it, watch it, write it.

The worker checks the file's modification time before each decision, so an
edit applies to the changes that follow it; a broken edit keeps the last good
scope in force and is reported, never silently replaced by "sync everything".
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from acct2crm.errors import ConfigError
from acct2crm.file_stamp import RECHECK_S, FileStamp, Stamp
from acct2crm.private_file import write_private
from acct2crm.rules.scope import DEFAULT_SCOPE, SyncScope, parse_scope, scope_to_data

log = logging.getLogger(__name__)


def read_scope(path: Path) -> SyncScope:
    if not path.exists():
        return DEFAULT_SCOPE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"scope file {path}: {exc}") from exc
    return parse_scope(data)


def write_scope(path: Path, scope: SyncScope) -> None:
    write_private(path, _to_toml(scope_to_data(scope)))


def _to_toml(data: dict[str, Any]) -> str:
    lines = ["# acct2crm sync scope: which accounting rows are synced to the CRM"]
    branches = data["branches"]
    lines.append(
        'branches = "all"'
        if branches == "all"
        else "branches = [" + ", ".join(_toml_value(b) for b in branches) + "]"
    )
    lines.append(f"customers_only = {'true' if data['customers_only'] else 'false'}")
    for item in data.get("where", []):
        lines.append("")
        lines.append("[[where]]")
        for key, value in item.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class ScopeWatcher:
    """The scope in force, re-read when the file changes."""

    def __init__(self, path: Path, every_s: float = RECHECK_S) -> None:
        self.path = path
        self._stamp = FileStamp(path, every_s)  # no file: the default scope
        self._seen: Stamp = None  # no file: the default scope, nothing to read
        self._scope = DEFAULT_SCOPE
        self.error: str | None = None
        self.current()

    def current(self) -> SyncScope:
        stamp = self._stamp.read()
        if stamp != self._seen:
            self._seen = stamp
            try:
                self._scope = read_scope(self.path)
                self.error = None
                log.info("sync scope in force: %s", self._scope.describe())
            except ConfigError as exc:
                self.error = str(exc)
                log.error("%s; keeping the previous scope (%s)", exc, self._scope.describe())
        return self._scope
