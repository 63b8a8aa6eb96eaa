"""python -m worker.emulator"""

from .cli import main

raise SystemExit(main())
