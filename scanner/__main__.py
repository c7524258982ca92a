"""``python -m scanner`` is ``arbscan``."""

from scanner.cli import main

raise SystemExit(main())
