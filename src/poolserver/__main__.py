"""`python -m poolserver`."""

import sys

from .cli import main

sys.exit(main())
