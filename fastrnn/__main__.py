"""``python -m fastrnn``: see fastrnn.apps.cli."""

import os
import sys

from fastrnn.apps.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader (say `| head`) went away: stop quietly, as Unix tools do.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 0
sys.exit(code)
