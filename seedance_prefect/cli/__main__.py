"""``python -m seedance_prefect.cli``: the ``seedance`` command."""

import sys

from .main import main

sys.exit(main())
