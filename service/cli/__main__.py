"""``python -m service.cli`` = the ``edge-infer`` console script."""

import sys

from . import main

sys.exit(main())
