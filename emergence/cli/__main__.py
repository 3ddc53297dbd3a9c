"""`python -m emergence.cli ...` runs the `emergence` command (where the console script is not on PATH)."""

import sys

from emergence.cli import main

sys.exit(main())
