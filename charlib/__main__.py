"""`python -m charlib`: the command line lives in `charlib.cli`."""

import sys

from charlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
