"""`python -m sdedit` is the `sdedit` command."""
import sys

from sdedit.cli import main

sys.exit(main())
