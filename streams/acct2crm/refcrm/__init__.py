"""The reference CRM: a small SaaS-like customer API with its own SQLite database.

``create_app(db_path, token, *, fault_injection=False, rate_limit_per_s=0)``
builds the ASGI app; ``python -m acct2crm.refcrm`` serves it (see __main__).
"""

from acct2crm.refcrm.app import create_app

__all__ = ["create_app"]
