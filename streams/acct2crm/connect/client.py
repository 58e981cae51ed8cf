"""A small Kafka Connect REST client; httpx and HTTP errors become ConnectError."""

from __future__ import annotations

from typing import Any

import httpx

from acct2crm.errors import ConnectError


class ConnectClient:
    """The few Connect REST calls acct2crm needs (injectable ``httpx.Client``)."""

    def __init__(self, base_url: str, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(base_url=self.base_url, timeout=15.0)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConnectError(
                f"Kafka Connect at {self.base_url} did not answer {method} {path}: {exc!r}"
            ) from exc

    @staticmethod
    def _fail(answer: httpx.Response, what: str) -> ConnectError:
        try:
            detail = answer.json().get("message", answer.text)
        except ValueError:
            detail = answer.text
        return ConnectError(f"Kafka Connect refused to {what}: HTTP {answer.status_code} {detail}")

    def get_config(self, name: str) -> dict[str, str] | None:
        answer = self._call("GET", f"/connectors/{name}/config")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise self._fail(answer, f"read the config of {name}")
        body: dict[str, str] = answer.json()
        return body

    def put_config(self, name: str, config: dict[str, str]) -> bool:
        """Create or replace the connector's config; True when it was created."""
        answer = self._call("PUT", f"/connectors/{name}/config", json=config)
        if answer.status_code not in (200, 201):
            raise self._fail(answer, f"accept the config of {name}")
        return answer.status_code == 201

    def status(self, name: str) -> dict[str, Any] | None:
        answer = self._call("GET", f"/connectors/{name}/status")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise self._fail(answer, f"report the status of {name}")
        body: dict[str, Any] = answer.json()
        return body

    def restart(self, name: str) -> None:
        """Restart the connector and all its tasks."""
        answer = self._call(
            "POST", f"/connectors/{name}/restart", params={"includeTasks": "true"}
        )
        if answer.status_code not in (200, 202, 204):
            raise self._fail(answer, f"restart {name}")
