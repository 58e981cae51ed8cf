"""The config file and the environment's names, read before the settings exist.

The settings object reads its sources through these: the file's path comes
from the environment (``ACCT2CRM_CONFIG``, else ``<home>/acct2crm.toml``), and
every setting's variable is ``ACCT2CRM_<NAME>``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from acct2crm.errors import ConfigError

ENV_PREFIX = "ACCT2CRM_"
# environment variables of the project that are not settings (tests, the stack fixture)
KNOWN_NON_SETTINGS = ("ACCT2CRM_TEST_", "ACCT2CRM_KEEP_STACK")


def _project_root() -> Path:
    here = Path(__file__).resolve()
    root = here.parents[2]
    return root if (root / "pyproject.toml").exists() else Path.cwd()


PROJECT_ROOT = _project_root()


def config_path() -> Path | None:
    """The config file in use: ``ACCT2CRM_CONFIG`` (which must exist), else
    ``<home>/acct2crm.toml`` when it exists. Read before the settings, so from the
    environment directly."""
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"{ENV_PREFIX}CONFIG names {path}, which is not an existing file; "
                "create it or unset the variable"
            )
        return path
    home = Path(os.environ.get(f"{ENV_PREFIX}HOME", str(PROJECT_ROOT / ".acct2crm")))
    candidate = home / "acct2crm.toml"
    return candidate if candidate.is_file() else None


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's keys and values, unchecked (the model checks them)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    if "config" in data:
        raise ConfigError(
            f"key 'config' in {path}: the config file's own path comes from "
            f"{ENV_PREFIX}CONFIG only; remove the key"
        )
    return data


def env_name(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"
