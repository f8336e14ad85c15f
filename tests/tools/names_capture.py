"""`nettrail ARGS...` with the container layouts (capture/names.py) read
below ROOT: the test hook is the module attribute, set in this process only.

    python -P names_capture.py ROOT capture ARGS..."""

import sys
from pathlib import Path

from nettrail import cli
from nettrail.capture import names

names.LAYOUTS = names.Layouts.under(Path(sys.argv[1]))
sys.exit(cli.main(sys.argv[2:]))
