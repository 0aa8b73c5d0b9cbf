"""`surge bench autoscale --live`: the simulator checked against the real pipeline
(nats-server, gateway and worker processes, Prometheus, the engine) on loopback."""
