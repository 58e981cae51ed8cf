"""The command groups of the ``acct2crm`` CLI, one module each; ``cli.py`` mounts them."""
