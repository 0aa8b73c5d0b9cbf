# The two entry points of the README, and the steps they are made of.
#   make demo   set everything up, then run `surge demo`
#   make test   set everything up (packages, nats-server, Prometheus, fuse3, local Kubernetes,
#               the container images), then run ruff, mypy --strict and the whole pytest suite
# Every step is idempotent and skips work that is already done (caches live under ~/.cache).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# A second tag of the same surge image: the e2e tier upgrades the chart to it.
E2E_RETAG ?= e2e-retag
K8S_BIN := $(shell tools/build-k8s.sh --print-bin-dir)

.PHONY: demo test lint typecheck unit integration e2e e2e-load e2e-install e2e-test venv \
	prometheus fuse k8s node-deps chart-tools images actionlint s3-server natscli crds \
	chart-docs clean

demo: venv
	$(BIN)/surge demo $(DEMO_ARGS)

# The set-up steps below, then the suite, as one pipeline (tools/run-suite.sh): the local
# cluster's binaries (tools/build-k8s.sh) build in the background while the rest of the
# set-up and the unit and integration tiers run; the e2e tier starts once they are there.
test:
	MAKE="$(MAKE)" SURGE_VENV=$(VENV) PYTEST_ARGS="$(PYTEST_ARGS)" tools/run-suite.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Prometheus, for the integration tier (the tests start their own on loopback).
prometheus:
	@command -v prometheus >/dev/null 2>&1 || tools/install-prometheus.sh

# Debian's fuse3: the lazy filesystem under `surge chaos`'s power-loss scenarios.
fuse:
	tools/install-fuse.sh

# An S3-compatible server (versitygw, checks SigV4) for the backup tests and `surge bench backup`.
S3_SERVER_VERSION ?= v1.8.0
s3-server:
	tools/go-tool.sh versitygw github.com/versity/versitygw $(S3_SERVER_VERSION) ./cmd/versitygw >/dev/null

# natscli (`nats bench`) for `surge bench nats` and its test: the broker's own limit.
NATSCLI_VERSION ?= v0.5.0
natscli:
	tools/go-tool.sh nats github.com/nats-io/natscli $(NATSCLI_VERSION) ./nats >/dev/null

# Debian's containerd/runc/CNI plugins for real nodes; kube-apiserver, controller-manager,
# scheduler, kubelet, kube-proxy, etcd, CoreDNS, kube-router, kwok, kubectl, helm from Go
# modules; and the chart's validation tools (kubeconform, helm-docs).
k8s: node-deps chart-tools
	tools/build-k8s.sh

node-deps:
	tools/install-node-deps.sh

# helm, kubeconform and helm-docs: what the unit tier's chart tests run.
chart-tools:
	tools/build-k8s.sh helm
	tools/build-chart-tools.sh

# The surge and surge-nats-server images as docker-archive tars, built with Debian's buildah
# on a debootstrap'd bookworm base (no registry, no daemon); cached by input hash under
# ~/.cache/surge/images. SURGE_IMAGE_BASE=python:3.11-slim uses that base instead.
images: venv
	tools/image/install-deps.sh
	SURGE_VENV=$(VENV) tools/image/build.sh --tag $(E2E_RETAG)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy operator/surge_operator workers/surge_workers tools/surge_cluster

unit: venv
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

integration: venv prometheus
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

# The cluster-agnostic e2e tier (tests/e2e/cluster) against any kubeconfig; the steps are
# those of .github/workflows/e2e-kind.yaml:
#   make e2e KUBECONFIG=/path/to/kubeconfig [KIND_CLUSTER=surge]
# KIND_CLUSTER loads the images with `kind load`, else into a local `surge-cluster`'s nodes.
# Without KUBECONFIG the tests start the local real-node cluster and do both themselves.
e2e: e2e-load e2e-install e2e-test

e2e-load: images
	$(if $(KUBECONFIG),SURGE_VENV=$(VENV) tools/e2e/load-images.sh,@echo "e2e-load: no KUBECONFIG: the tests' own cluster loads the images")

e2e-install: venv
	$(if $(KUBECONFIG),PATH="$(K8S_BIN):$$PATH" SURGE_VENV=$(VENV) tools/e2e/install.sh,@echo "e2e-install: no KUBECONFIG: the tests' fixture installs the chart")

e2e-test: venv $(if $(KUBECONFIG),,k8s)
	SURGE_E2E_KUBECONFIG="$(KUBECONFIG)" SURGE_REQUIRE_E2E=1 $(BIN)/pytest -m e2e tests/e2e/cluster $(PYTEST_ARGS)

# actionlint from its Go module (pinned in tools/versions.env), for the workflow test.
actionlint:
	tools/build-actionlint.sh

crds: venv
	$(BIN)/surge crds > crds/messagingcluster.yaml
	$(BIN)/python -c "import pathlib; from surge_operator.crdgen import CHART_CRD_TEMPLATE as t, \
		render_chart_crd_template as r; pathlib.Path(t).write_text(r())"
	$(BIN)/python -c "import pathlib; from surge_operator.chart_values import render_values_schema as r; \
		pathlib.Path('charts/surge/values.schema.json').write_text(r())"
	$(BIN)/python -c "import pathlib; from surge_operator.crdgen import embed_reference as e; \
		p = pathlib.Path('README.md'); p.write_text(e(p.read_text()))"

# charts/surge/README.md from the `# --` comments in values.yaml (helm-docs: make k8s builds it).
chart-docs:
	$$(tools/build-k8s.sh --print-bin-dir)/helm-docs --chart-search-root charts --sort-values-order file

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
