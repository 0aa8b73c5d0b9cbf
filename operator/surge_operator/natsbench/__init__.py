"""`surge bench nats`: what durability costs, and how close Surge gets to the broker.

nats_bench (msg/s, `nats bench js pub async` from natscli, the NATS project's own
benchmark, built from its Go module; same message count and size for every row; the
aggregate rate over all its clients)
    fsync_always   R3 on servers with `sync_interval: always` (Surge's managed default):
                   the best median over the client sweep (1, 4, 16 clients)
    fsync_lazy     the same on servers with nats-server's default (`sync_interval: 2m`)
    r3             = fsync_always (the durable default)
    r1             R1 on the fsync-always servers, 4 clients
fsync_cost_ratio       fsync_always ÷ fsync_lazy
r1_vs_r3_ratio         r3 ÷ r1 (0 when every R1 run failed)
surge_msgs_per_s       end to end on the fsync-always R3 servers: the gateway (HTTP batches
                       of 500 over 4 connections; every message acked by JetStream before
                       the 202) -> stream -> one worker (noop handler) acking each; from the
                       first POST until JetStream's ack floor covers the last message
surge_vs_nats_bench    surge_msgs_per_s ÷ nats_bench.fsync_always (goal >= 0.5)
nats_bench.end_to_end  `nats bench js consume` (durable, explicit acks, 4 clients) receiving
                       while `nats bench js pub async` (4 clients) publishes (context)
surge_vs_nats_end_to_end  surge_msgs_per_s ÷ nats_bench.end_to_end

Where: `incluster` (the default) runs on managed NATS on Kubernetes, a local cluster with
real nodes unless a kubeconfig is given; `loopback` runs the same generated configuration
on nats-servers on this machine. Every figure is the median of `rounds` runs, all printed.
"""
