"""Settings of the `redis` group: Redis and Redis Sentinel, the Celery broker.

Ports are in group_data/all.py (`redis_port`, `sentinel_port`), like the name the sentinels
monitor the primary under, `redis_master_name` (default "airflow"): the Airflow hosts need it
too, so it may only be set there. Keep the sentinel settings equal on every redis host.
"""

# Memory limit of each redis-server, in MiB. The policy is always noeviction: a broker must
# never drop a queued task, so a full Redis refuses new messages instead.
redis_maxmemory_mb = 256
# AOF fsync policy: "everysec" (at most 1 s of acknowledged writes lost on a power cut),
# "always" (none, much slower) or "no" (the kernel decides).
redis_appendfsync = "everysec"
# Seconds systemd waits before restarting a crashed redis-server. Longer than a failover, so a
# crashed primary is replaced by a replica and comes back as a replica, not as a stale primary.
redis_restart_delay = 15
# A primary refuses writes unless at least this many replicas acknowledged its replication
# stream within redis_min_replicas_max_lag seconds (Redis min-replicas-to-write). A primary cut
# off from its replicas by a partition so stops taking writes that the replica promoted on the
# other side would never have. 0 = never refuse; at most the number of replicas (redis hosts - 1).
redis_min_replicas_to_write = 1
# Seconds since a replica's last acknowledgement (replicas send one every second) after which it
# no longer counts for redis_min_replicas_to_write: the longest a cut-off primary takes writes.
redis_min_replicas_max_lag = 5
# Milliseconds a server may go without answering before a sentinel considers it down. Plus the
# ping period (<= 1 s), the election and the promotion (~1.5 s), this is how long the broker
# is unavailable when its primary dies (measured in the lab: see bench/failover.py).
sentinel_down_after_ms = 1500
# Sentinel failover-timeout in milliseconds: a failed failover is retried after twice this.
sentinel_failover_timeout_ms = 10000
# Replicas that resynchronise from a newly promoted primary at the same time.
sentinel_parallel_syncs = 1
