"""Allow `python -m nestd`."""

from nestd.cli import main

raise SystemExit(main())
