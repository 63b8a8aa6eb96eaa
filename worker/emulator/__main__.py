"""``python -m worker.emulator``: the same as ``zuora-reaper emulator``."""

import sys

from worker.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
