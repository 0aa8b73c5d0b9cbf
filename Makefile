# The two entry points of the README, and the steps they are made of.
#   make demo   set everything up, then run `surge demo`
#   make test   set everything up (packages, nats-server, Prometheus, local Kubernetes), then
#               run ruff, mypy --strict and the whole pytest suite
# Every step is idempotent and skips work that is already done (caches live under ~/.cache).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit integration e2e venv prometheus k8s s3-server crds clean

demo: venv
	$(BIN)/surge demo $(DEMO_ARGS)

test: venv prometheus k8s s3-server lint typecheck
	SURGE_REQUIRE_E2E=1 $(BIN)/pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Prometheus, for the integration tier (the tests start their own on loopback).
prometheus:
	@command -v prometheus >/dev/null 2>&1 || tools/install-prometheus.sh

# An S3-compatible server (versitygw, checks SigV4) for the backup tests and `surge bench backup`.
S3_SERVER_VERSION ?= v1.8.0
s3-server:
	tools/go-tool.sh versitygw github.com/versity/versitygw $(S3_SERVER_VERSION) ./cmd/versitygw >/dev/null

# kube-apiserver, controller-manager, scheduler, etcd, kwok, kubectl, helm from Go modules,
# and the chart's validation tools (kubeconform, helm-docs).
k8s:
	tools/build-k8s.sh
	tools/build-chart-tools.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy operator/surge_operator workers/surge_workers tools/surge_cluster

unit: venv
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

integration: venv prometheus
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

e2e: venv k8s
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

crds: venv
	$(BIN)/surge crds > crds/messagingcluster.yaml
	$(BIN)/python -c "import pathlib; from surge_operator.crdgen import CHART_CRD_TEMPLATE as t, \
		render_chart_crd_template as r; pathlib.Path(t).write_text(r())"
	$(BIN)/python -c "import pathlib; from surge_operator.chart_values import render_values_schema as r; \
		pathlib.Path('charts/surge/values.schema.json').write_text(r())"
	$(BIN)/python -c "import pathlib; from surge_operator.crdgen import embed_reference as e; \
		p = pathlib.Path('README.md'); p.write_text(e(p.read_text()))"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
