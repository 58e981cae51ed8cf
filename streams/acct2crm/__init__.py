"""acct2crm: keeps a CRM's customer list in step with an accounting system."""

__version__ = "0.1.0"
