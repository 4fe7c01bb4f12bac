"""`python -m bootenv.zfs.fake ...`: see shell.py."""

from .shell import main

raise SystemExit(main())
