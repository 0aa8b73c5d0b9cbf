"""The backup Job's environment contract: what the operator's builders set and the
`surge backup`/`surge restore` commands read. Values only, no imports, so the pure
builders can use it."""

from __future__ import annotations

ENV_ENDPOINT = "SURGE_S3_ENDPOINT"
ENV_REGION = "SURGE_S3_REGION"
ENV_ACCESS_KEY = "SURGE_S3_ACCESS_KEY_ID"
ENV_SECRET_KEY = "SURGE_S3_SECRET_ACCESS_KEY"
PVC_MOUNT = "/backup"
