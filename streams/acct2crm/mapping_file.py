"""The operator's field-mapping file: read it and watch it.

Like the scope file, the worker checks the file's modification time before
each decision, so an edit applies to the changes that follow it; a broken
edit keeps the last good mapping in force and is reported on ``status``,
never silently replaced by the default. A file broken when the worker starts
stops it with the error.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from acct2crm.errors import ConfigError
from acct2crm.file_stamp import RECHECK_S, FileStamp
from acct2crm.rules.mapping import DEFAULT_MAPPING, FieldMapping, parse_mapping

log = logging.getLogger(__name__)


def read_mapping(path: Path) -> FieldMapping:
    """The mapping in ``path``; no file means the default (the contract's own fields)."""
    if not path.exists():
        return DEFAULT_MAPPING
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"mapping file {path}: {exc}") from exc
    try:
        return parse_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"mapping file {path}: {exc}") from exc


class MappingWatcher:
    """The mapping in force, re-read when the file changes.

    A file that is broken at start raises ``ConfigError``: there is no good
    mapping to keep yet, and syncing with the default instead could write
    fields the operator meant to leave to sales.
    """

    def __init__(self, path: Path, every_s: float = RECHECK_S) -> None:
        self.path = path
        self._stamp = FileStamp(path, every_s)
        self._seen = self._stamp.read()
        self._mapping = read_mapping(path)
        self.error: str | None = None
        log.info("field mapping in force: %s", "; ".join(self._mapping.describe(redact=True)))

    def current(self) -> FieldMapping:
        stamp = self._stamp.read()  # None: no file, the default
        if stamp != self._seen:
            self._seen = stamp
            try:
                self._mapping = read_mapping(self.path)
                self.error = None
                described = "; ".join(self._mapping.describe(redact=True))
                log.info("field mapping in force: %s", described)
            except ConfigError as exc:
                self.error = str(exc)
                log.error("%s; keeping the previous field mapping", exc)
        return self._mapping

    def summary(self) -> str:
        """One line for the status page: where the mapping comes from. The file is looked
        at first, as the scope's is: an edit shows (or its error does) without waiting for
        the next change to need the mapping."""
        mapping = self.current()
        origin = str(self.path) if self._seen is not None else "default (no mapping file)"
        return f"{origin}; {len(mapping.rules)} CRM fields"
