"""`python -m mmlesson ...`: see `mmlesson.cli`."""

from mmlesson.cli import main

raise SystemExit(main())
