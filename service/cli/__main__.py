"""``python -m service.cli`` = the ``edge-infer`` console script."""

import sys

from service.cli import main

sys.exit(main())
