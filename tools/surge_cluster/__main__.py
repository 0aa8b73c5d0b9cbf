"""`python -m surge_cluster` = `surge-cluster`."""

import sys

from surge_cluster.cli import main

sys.exit(main())
