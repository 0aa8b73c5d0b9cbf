# One image for every Surge process: surge-operator, surge-worker and surge-gateway.
#   docker build -t surge:0.1.0 .
#   kind load docker-image surge:0.1.0 --name surge
# Runs as a non-root user and needs no writable root filesystem (the chart and the
# operator's pod templates set readOnlyRootFilesystem and mount /tmp as an emptyDir).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY workers ./workers
COPY tools/surge_cluster ./tools/surge_cluster
RUN python -m venv /opt/surge \
 && /opt/surge/bin/pip install --upgrade pip \
 && /opt/surge/bin/pip install .

FROM python:3.11-slim
COPY --from=build /opt/surge /opt/surge
ENV PATH=/opt/surge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SURGE_LOG_FORMAT=json
USER 65532:65532
ENTRYPOINT []
CMD ["surge-operator"]
