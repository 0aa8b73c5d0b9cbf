"""The backup Job's environment contract: what the operator's builders set and the
`surge backup`/`surge restore` commands read. Values only, no imports, so the pure
builders can use it."""

from __future__ import annotations

ENV_ENDPOINT = "SURGE_S3_ENDPOINT"
ENV_REGION = "SURGE_S3_REGION"
ENV_ACCESS_KEY = "SURGE_S3_ACCESS_KEY_ID"
ENV_SECRET_KEY = "SURGE_S3_SECRET_ACCESS_KEY"
PVC_MOUNT = "/backup"
#: Kubernetes' default terminationMessagePath: the restore Job's refusal, for the condition
TERMINATION_LOG = "/dev/termination-log"
#: exit code of a refused restore (RestoreConflictError): retrying cannot help
CONFLICT_EXIT_CODE = 3
