"""Backups and restore of a MessagingCluster's JetStream state.

A backup is a set of JetStream stream snapshots (the snapshot API: the server's own
consistent copy of a stream's blocks and its consumers' state) written to a target, plus a
manifest that records each stream's last sequence. The manifest is written last, so a
backup without one is incomplete: it is never listed, restored or counted for retention.

    manifest.py   pure: manifest model, backup ids, retention plan
    schedule.py   pure: cron schedule, next run, overdue check
    snapshot.py   I/O: JetStream snapshot/restore protocol over nats-py
    store.py      I/O: BackupStore Protocol, S3-compatible and directory (PVC) stores
    runner.py     orchestration: back up / restore / prune one cluster
    bench.py      `surge bench backup`
"""
