"""``python -m pyrostore.operator``: the same as ``pyrostore operator``."""

from pyrostore.cli import main

if __name__ == "__main__":
    import sys

    sys.argv[1:1] = ["operator"]
    main()
