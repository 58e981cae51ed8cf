"""The test session never talks to the developer's own services: loading the test
configuration clears every ``ACCT2CRM_*`` variable but the test knobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_a_developers_crm_and_kafka_settings_never_reach_the_tests() -> None:
    env = dict(os.environ)
    env.update(
        ACCT2CRM_CRM_URL="https://crm.example.com",
        ACCT2CRM_CRM_TOKEN="the-real-token",
        ACCT2CRM_KAFKA_BOOTSTRAP="kafka.example.com:9092",
        ACCT2CRM_HOME="/srv/my-own-stack",
        ACCT2CRM_TEST_PORT_OFFSET="900",
    )
    probe = (
        "import json, os, tests.conftest;"
        "from acct2crm.settings import get_settings; s = get_settings();"
        "print(json.dumps({'env': sorted(k for k in os.environ if k.startswith('ACCT2CRM_')),"
        "'crm': s.crm_url, 'token': s.crm_token.get_secret_value(), 'kafka': s.kafka_bootstrap,"
        "'home': str(s.home)}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert not {"ACCT2CRM_CRM_URL", "ACCT2CRM_CRM_TOKEN", "ACCT2CRM_KAFKA_BOOTSTRAP"} & set(
        seen["env"])
    assert seen["crm"] == "http://127.0.0.1:58980"
    assert seen["token"] != "the-real-token"
    assert seen["kafka"] == "127.0.0.1:59992"
    assert seen["home"] != "/srv/my-own-stack"
