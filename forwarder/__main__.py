"""``python -m forwarder`` runs the command line."""

import sys

from forwarder.cli import main

sys.exit(main())
