"""Pure builders of a managed NATS cluster, one module per owned object (see `objects`
for the ordered list). Kept import-free so `context` can use `names` without a cycle."""
