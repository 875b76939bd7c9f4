"""``python -m haan_core``: see haan_core/cli.py."""
import sys

from .cli import main

sys.exit(main())
