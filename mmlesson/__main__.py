"""`python -m mmlesson ...`: see `mmlesson.course.cli`."""

from mmlesson.course.cli import main

raise SystemExit(main())
