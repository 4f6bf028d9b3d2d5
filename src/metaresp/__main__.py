"""``python -m metaresp`` runs the command line."""

import sys

from metaresp.cli import main

sys.exit(main())
