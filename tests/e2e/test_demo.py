"""The README's main job, ``acct2crm demo``, as a user runs it, against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from acct2crm.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_prints_every_rule_and_the_crm_list(stack_settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", "demo", "--timeout", "240"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for rule, action in [
        ("R1a", "created"),
        ("R1b", "skipped_duplicate_code"),
        ("R2a", "updated"),
        ("R2b", "updated"),
        ("R5", "ignored_out_of_scope"),
        ("R2c", "created"),
        ("no-op", "unchanged"),
        ("R3", "ignored_delete"),
    ]:
        line = next((ln for ln in out.splitlines() if f"{rule}:" in ln), "")
        assert action in line, f"{rule} should show {action}:\n{out}"
    assert "Every change has its result" in out
    assert "CRM customers of demo run" in out
    assert "Công ty TNHH Ánh Dương" in out  # NFD typed, NFC in the CRM
