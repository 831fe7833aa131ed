"""``python -m adalif``: the ``adalif`` command (:mod:`adalif.cli`)."""

import sys

from .cli import main

sys.exit(main())
