"""``python -m i2v.cli``: the same as the ``i2v`` command."""

import sys

from i2v.cli.main import main

sys.exit(main())
