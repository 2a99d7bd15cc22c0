"""``python -m structprune``: the command line (see :mod:`structprune.cli`)."""

from structprune.cli import main

raise SystemExit(main())
