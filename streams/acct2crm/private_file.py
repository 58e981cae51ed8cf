"""Files written for the operator (scope, pause, tenants, Connect's secrets).

Each is written whole and then renamed, so a reader never sees half of one,
and is readable by its owner only: the state folder may be passable by others
(as root it is 711, for PostgreSQL's user), and these files name tenants and
their settings, or hold secrets.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 600; a missing folder is made mode 700."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(staging, PRIVATE_FILE)  # a staging file left by a crash kept its own mode
    staging.replace(path)
