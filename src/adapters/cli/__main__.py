"""``python -m adapters.cli``: the ``syncledger`` command line."""

from adapters.cli.main import main

main()
