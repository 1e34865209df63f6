"""``python -m raftkv_cli.ctl``: the ``raftkv`` command."""

from . import main

raise SystemExit(main())
