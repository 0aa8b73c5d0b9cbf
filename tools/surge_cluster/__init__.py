"""Local Kubernetes control plane for tests: build, start, stop, pod runner."""
