"""``python -m dlrc_lib ...`` is the ``dlrc`` command."""
from dlrc_lib.run.cli import main

raise SystemExit(main())
