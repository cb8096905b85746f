"""``python -m pharmakg`` is the ``pharmakg`` command."""

import sys

from .cli import main

sys.exit(main())
