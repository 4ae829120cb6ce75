"""``python -m nflow ...`` runs the command-line program."""
import sys

from nflow.cli import main

sys.exit(main())
