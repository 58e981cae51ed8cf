"""One indexing process per result index: the lease (index_lease.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from acct2crm.app.index_lease import IndexLease

HOLD = """
import sys, time
from pathlib import Path
from acct2crm.app.index_lease import IndexLease
lease = IndexLease(Path(sys.argv[1]))
print(lease.held(), flush=True)
time.sleep(60)
"""


def test_one_holder_at_a_time_and_the_next_takes_over_after_release(tmp_path: Path) -> None:
    path = tmp_path / "index" / "results.lock"
    first, second = IndexLease(path), IndexLease(path)
    assert first.held()
    assert first.held()  # kept
    assert not second.held()
    first.release()
    assert second.held()
    assert not first.held()
    second.release()


def test_a_killed_holder_frees_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "results.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        mine = IndexLease(path)
        assert not mine.held()  # another process holds it
        holder.kill()
        holder.wait(10)
        assert mine.held()
        mine.release()
    finally:
        if holder.poll() is None:
            holder.kill()
