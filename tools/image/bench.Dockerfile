# surge-bench: the Surge image plus natscli (`nats bench`), for `surge bench nats` on a
# cluster. Built by `tools/image/build.sh --bench` on top of the surge image it just built;
# the context holds only the natscli binary (static, built from its Go module).
ARG SURGE_IMAGE
FROM ${SURGE_IMAGE}
COPY nats /usr/local/bin/nats
USER 65532:65532
