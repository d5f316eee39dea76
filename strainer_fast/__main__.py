"""``python -m strainer_fast``: the strainer-fast command line."""

import sys

from .cli import main

sys.exit(main())
