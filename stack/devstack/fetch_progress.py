"""Maven's download of the stack's jars, with progress: jars and megabytes so far.

Maven runs quiet (its own output is a wall of lines); the jars it copies
into the staging folder are the progress, and its output is kept for the
error message.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from acct2crm.task_progress import track

POLL_S = 0.5


def run_maven(argv: list[str], staging: Path, label: str, timeout_s: float
              ) -> subprocess.CompletedProcess[str]:
    """Run Maven; raise ``subprocess.TimeoutExpired`` like ``subprocess.run``."""
    with tempfile.TemporaryFile("w+") as out, track(f"jars: {label}", None, "jars") as tracker:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout_s
        while child.poll() is None:
            if time.monotonic() > deadline:
                child.kill()
                child.wait()
                raise subprocess.TimeoutExpired(argv, timeout_s)
            jars = list(staging.glob("*.jar"))
            size = sum(j.stat().st_size for j in jars if j.exists())
            tracker.update(completed=len(jars), note=f"{size / 1e6:.1f} MB")
            time.sleep(POLL_S)
        out.seek(0)
        text = out.read()
    return subprocess.CompletedProcess(argv, child.returncode, stdout=text, stderr=text)
