"""`surge chaos`: fault scenarios on real components, each ending with an id-by-id check.

checker.py    pure: accepted ids vs effects -> lost, double effects, order, absorbed
regions.py    real nats-servers per region on loopback (shared with the tests)
scenarios.py  primary-kill-9, split-brain-heal and primary-loss-during-surge around the
              real FailoverController
surge_profile.py  pure: a surge's ramping schedule, offered rates measured from sends
operator_process.py  the failover loop as its own process (status in a file, crash points)
operator_driver.py   start, arm, kill and read that process (shared with the crash tests)
operator_kill.py     operator-kill-9-mid-failover: that process killed inside a promotion
powerloss.py  power loss under a nats-server whose store is on the lazy filesystem
lazyfs.py     pure: the page cache that keeps writes until fsync (Jepsen's lazyfs)
lazyfs_fuse.py, lazyfs_mount.py   its FUSE daemon, and mounting / killing it
control_plane_faults.py   operator kill -9 mid-scale, the leader of two frozen past its
              Lease, kube-apiserver restarted or frozen, on a local control plane, under
              the failover scenarios' client and worker
operator_host.py   the operator as a process against an API server, replica log, flood
result.py     one scenario's outcome as the contract's JSON object
suite.py      the one list of scenarios (append yours), run one after another
command.py    run them and print the JSON list the contract names
"""
