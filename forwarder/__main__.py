"""``python -m forwarder`` runs the command line."""

import sys

from forwarder.commands.cli import main

sys.exit(main())
