"""`python -m kronos`: the `kronos` command."""

import sys

from kronos.commands.main import main

sys.exit(main())
