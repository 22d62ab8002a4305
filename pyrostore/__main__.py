"""``python -m pyrostore``: the same as the ``pyrostore`` command."""

from pyrostore.cli import main

main()
