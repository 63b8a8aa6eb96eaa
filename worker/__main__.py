"""``python -m worker`` is the ``zuora-reaper`` command."""

import sys

from worker.cli import main

sys.exit(main())
