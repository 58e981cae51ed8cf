"""Readers that open a new result index at the same moment all get it.

SQLite answers "database is locked" at once (no busy wait) to a connection
that switches a file to WAL while another does the same; several `status`
calls, or the worker and a command, open a fresh index together.
"""

from __future__ import annotations

import threading
from pathlib import Path

from acct2crm import result_index
from acct2crm.settings import Settings


def test_readers_opening_a_new_index_together_all_get_it(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    for round_ in range(40):
        settings = Settings(home=tmp_path / f"home-{round_}")

        def open_and_close(settings: Settings = settings) -> None:
            try:
                result_index.open_index(settings).close()
            except Exception as exc:  # collected: a thread's error would vanish
                errors.append(exc)

        threads = [threading.Thread(target=open_and_close) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
