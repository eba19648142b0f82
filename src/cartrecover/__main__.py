"""`python -m cartrecover`."""

import sys

from cartrecover.entrypoints.cli import main

sys.exit(main())
