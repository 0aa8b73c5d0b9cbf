"""`python -m surge_workers` runs a worker (same as `surge-worker`)."""

from surge_workers.cli import worker_main

worker_main()
