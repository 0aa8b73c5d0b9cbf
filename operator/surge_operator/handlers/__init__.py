"""kopf shell of the operator. Importing `surge_operator.handlers.lifecycle` registers the
handlers with kopf's default registry; `run.main()` does that, nothing else should."""
