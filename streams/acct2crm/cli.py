"""The ``acct2crm`` command line (contract: SPEC section 4).

Each command only parses options and delegates to the module that does the
work, so the same operations are callable from tests.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="acct2crm",
    help="Keep the CRM's customer list in step with the accounting system.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
