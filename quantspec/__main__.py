"""``python -m quantspec``: the command-line interface."""

from quantspec.cli.main import main

raise SystemExit(main())
