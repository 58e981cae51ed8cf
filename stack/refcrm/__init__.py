"""The reference CRM: a small SaaS-like customer API with its own SQLite database.

``create_app(db_path, token, *, fault_injection=False, rate_limit_per_s=0)``
builds the ASGI app; ``python -m refcrm`` serves it (see __main__).
"""

from refcrm.app import create_app

__all__ = ["create_app"]
