"""Long commands show done / total, rate and ETA; off a terminal as plain lines."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from acct2crm.settings import Settings

pytestmark = pytest.mark.integration

LINE = re.compile(r"^(?P<what>[^:]+(?:: [^:]+)?): (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+) "
                  r"\(100%\), [\d,-]+ \w+/s, ETA \d+:\d\d", re.MULTILINE)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "acct2crm.cli", *args], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def finished(stderr: str) -> dict[str, tuple[int, int, str]]:
    return {m["what"]: (int(m["done"].replace(",", "")), int(m["total"].replace(",", "")),
                        m["unit"]) for m in LINE.finditer(stderr)}


def test_backfill_wait_follows_the_worker_to_the_end(stack_settings: Settings) -> None:
    shown = finished(run("backfill", "--wait").stderr)
    sent = shown["backfill: sending rows"]
    assert sent[0] == sent[1] and sent[2] == "rows"
    applied = shown["backfill: applied by the worker"]
    assert applied == (sent[0], sent[0], "commands")


def test_replay_dry_run_and_up_show_their_progress(stack_settings: Settings) -> None:
    shown = finished(run("replay", "--from-offset", "0", "--dry-run").stderr)
    done, total, unit = shown["replay (dry run): reading"]
    assert done == total > 0 and unit == "offsets"
    up = finished(run("up", "--crm-fault-injection").stderr)
    assert up["up: services healthy"] == (5, 5, "services")
