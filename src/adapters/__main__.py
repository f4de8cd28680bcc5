"""``python -m adapters``: the ``syncledger`` command line."""

from adapters.cli.main import main

main()
