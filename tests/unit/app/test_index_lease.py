"""One indexing process per result index (index_lease.py), paced while busy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from acct2crm.app.index_lease import IndexLease
from acct2crm.app.result_indexer import BUSY_INTERVAL_S, IndexPace

HOLD = """
import sys, time
from pathlib import Path
from acct2crm.app.index_lease import IndexLease
from acct2crm.app.result_indexer import BUSY_INTERVAL_S, IndexPace
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


def test_the_index_follows_every_tick_when_quiet_and_every_ten_seconds_when_busy() -> None:
    now = [1_000.0]
    last_result = [float("-inf")]
    last_result[0] = now[0]
    pace = IndexPace(lambda: last_result[0], clock=lambda: now[0])
    assert not pace.due()  # started busy: not before ten seconds
    last_result[0] = float("-inf")
    assert pace.due()  # quiet
    now[0] += 1
    assert pace.due()
    last_result[0] = now[0] - 0.2  # results being written
    now[0] += 1
    last_result[0] = now[0] - 0.1
    assert not pace.due()  # busy, indexed 1 s ago
    now[0] += BUSY_INTERVAL_S - 1
    last_result[0] = now[0]
    assert pace.due()  # busy, but 10 s since the last
    now[0] += 1
    last_result[0] = now[0] - 5  # quiet again
    assert pace.due()
