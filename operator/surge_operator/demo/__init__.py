"""`surge demo`: the whole pipeline on one machine, scaled live by the Surge policy.

An embedded nats-server, the provisioned pipeline, real `surge-worker` processes driven
through `LocalProcessTarget` by the same `decide` the operator runs, a surge from
`surge load` (open loop, in process), a live dashboard and a summary.
"""
