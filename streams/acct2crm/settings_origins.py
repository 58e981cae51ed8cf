"""Where each setting's value came from, and what to say when one is wrong.

Apart from ``settings.py`` so the settings object stays a plain list of
settings: ``config show`` reads the origins, and a bad value is described
here, with the key, its source and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from typing import Any, get_args

from pydantic import SecretStr, ValidationError
from pydantic_settings import EnvSettingsSource

from acct2crm.config_file import (
    ENV_PREFIX,
    KNOWN_NON_SETTINGS,
    config_path,
    env_name,
    read_config_file,
)
from acct2crm.errors import ConfigError
from acct2crm.settings import Settings


def _env_values() -> dict[str, Any]:
    return EnvSettingsSource(Settings)()


def origins(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """Where each setting's value came from, as (source, detail): ``("env", "ACCT2CRM_X")``,
    ``("file", "<path>")``, ``("given", None)`` (an override in code) or ``("default", None)``."""
    env = _env_values()
    path = config_path()
    in_file = read_config_file(path) if path is not None else {}
    found: dict[str, tuple[str, str | None]] = {}
    for name in Settings.model_fields:
        if name in settings.overrides:
            found[name] = ("given", None)
        elif name in env:
            found[name] = ("env", env_name(name))
        elif name in in_file:
            found[name] = ("file", str(path))
        else:
            found[name] = ("default", None)
    return found


def unknown_env_names() -> list[str]:
    """``ACCT2CRM_*`` variables that name no setting (ignored; likely a typo)."""
    return sorted(
        key for key in os.environ
        if key.upper().startswith(ENV_PREFIX)
        and key[len(ENV_PREFIX):].lower() not in Settings.model_fields
        and not key.upper().startswith(KNOWN_NON_SETTINGS)
    )


def describe_errors(exc: ValidationError, given: dict[str, Any]) -> str:
    """One line: each bad key, where it came from and what is allowed."""
    env = _env_values()
    try:
        path = config_path()
    except ConfigError:
        path = None
    known = sorted(name for name in Settings.model_fields if name != "config")
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        if key in given:
            where = "given in code"
        elif key in env:
            where = f"from the environment ({env_name(key)})"
        else:
            where = f"in {path}" if path is not None else "default"
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                f"unknown key '{key}' {where}; {hint}known keys: {', '.join(known)}"
            )
            continue
        field = Settings.model_fields.get(key)
        secret = field is not None and (
            field.annotation is SecretStr or SecretStr in get_args(field.annotation)
        )
        shown = "" if secret else f" = {error.get('input')!r}"
        reason = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{key}{shown} {where}: {reason}")
    return "invalid configuration: " + "; ".join(problems)
