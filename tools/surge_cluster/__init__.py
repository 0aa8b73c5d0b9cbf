"""Local Kubernetes cluster for tests: build, start, stop; real nodes or kwok nodes."""
