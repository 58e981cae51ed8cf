"""The one error hierarchy of acct2crm.

Third-party errors (httpx, Kafka clients, psycopg, subprocesses) are converted
at the edge with ``raise ... from exc`` so callers only ever handle these::

    Acct2CrmError
    ├── ConfigError            settings, scope or mapping file unusable
    ├── StackError             the local stack cannot start or answer
    │   ├── ServiceUnhealthy   one service did not become healthy in time
    │   └── StartFailed        ``up`` failed at one service and undid what it started
    ├── ConnectError           Kafka Connect REST refused or timed out
    ├── DecodeError            a change message cannot be decoded (bad input)
    ├── BadRowError            a row cannot be synced (e.g. empty code)
    └── CrmError               the CRM answered badly or not at all
        ├── CrmRetryable       try again later: network, timeout, 5xx, 429, 408
        │   └── CrmMisconfigured  the operator must fix the CRM settings: 401/403,
        │                         a redirect, no customer API at crm_url
        └── CrmPermanent       retrying cannot help this record: other 4xx
            ├── CrmRejected    422, or 400: the CRM refuses this record or query
            ├── CrmConflict    409: the code already exists
            └── CrmNotFound    404: the record is gone

Retryable errors wait and retry in order (rule R4); a misconfiguration waits
the same way (nothing is lost while the operator fixes it) and shows as such
on ``status``. Permanent ones are that one record's failure: a ``failed``
result plus a dead letter, and the line goes on.
"""

from __future__ import annotations


class Acct2CrmError(Exception):
    """Base of every error acct2crm raises on purpose."""


class ConfigError(Acct2CrmError):
    """Settings, the sync-scope file or the field-mapping file cannot be used."""


class StackError(Acct2CrmError):
    """The local stack cannot be started, stopped or reached."""


class ServiceUnhealthy(StackError):
    """A service of the local stack did not become healthy in time."""


class StartFailed(StackError):
    """``up`` failed at ``service``; ``stopped`` names what it had started and stopped again."""

    def __init__(self, message: str, *, service: str, stopped: tuple[str, ...]) -> None:
        super().__init__(message)
        self.service = service
        self.stopped = stopped


class ConnectError(Acct2CrmError):
    """Kafka Connect's REST API refused a request or did not answer."""


class DecodeError(Acct2CrmError):
    """A message on the change topic is not a change we can read."""


class BadRowError(Acct2CrmError):
    """A row cannot be synced as it is (for example an empty code)."""


class CrmError(Acct2CrmError):
    """The CRM did not do what was asked."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CrmRetryable(CrmError):
    """The CRM may accept the same call later (down, 5xx, 429, timeout)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class CrmMisconfigured(CrmRetryable):
    """The CRM cannot be used as configured (token refused, URL redirects or is no API).

    Retryable: every change waits, in order, until the operator fixes the
    settings, instead of every change failing.
    """


class CrmPermanent(CrmError):
    """Retrying the same call cannot succeed."""


class CrmRejected(CrmPermanent):
    """The CRM refused a field (422)."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message, status=status)
        self.field = field


class CrmConflict(CrmPermanent):
    """The CRM already has a customer with that code (409)."""


class CrmNotFound(CrmPermanent):
    """The CRM record addressed does not exist (404)."""
