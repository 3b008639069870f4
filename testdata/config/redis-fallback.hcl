# redis-fallback.hcl — alerts and agent states in Redis, which the redis
# plugin rides out an outage of by buffering writes locally; metrics in
# memory. Shows per-kind routing: each record kind goes to the backend
# that suits it.

listen = "127.0.0.1:8474"

# Agent states and alerts must survive a restart of the daemon: Redis.
backend "redis" {
  # The redis plugin is built into the host. It imports the redis
  # capability, which the redis block below grants; capabilities is left
  # out, so it gets log, clock and kv besides (kv holds the fallback
  # buffer).
  plugin = "builtin:redis"

  # Each instance is held for a whole Redis round trip, so a Redis
  # backend wants more of them than CPUs (the default would be 4×GOMAXPROCS
  # with Redis; 32 pins it so the pool does not change with the machine).
  instances = 32

  options = {
    # Redis down: keep writes in the host's kv store and replay them, in
    # order, when Redis is back, instead of failing them ("fail", the
    # default). Reads meanwhile are served from the buffer and marked stale.
    # The daemon keeps that store on disk, in DATA_DIR/backends/redis
    # (or a data_dir attribute of this block): a buffered write survives a
    # restart, a crash or a reload of the daemon.
    fallback = "buffer"
    # At most this many buffered writes (the plugin's default, made
    # explicit); past it writes fail as UNAVAILABLE, never silently.
    fallback_buffer_entries = 10000
    # Alerts are kept two weeks, agent states a day after their last write.
    alert_ttl_seconds       = 1209600
    agent_state_ttl_seconds = 86400
  }

  limits {
    # A call includes a Redis round trip; leave room above the Redis
    # timeouts below (2s read + 2s write) before the host cuts it short.
    call_timeout = "10s"
  }

  redis {
    # A single local node, database 0. No password: a loopback Redis.
    url = "redis://127.0.0.1:6379/0"
    # Required: every key this backend touches starts with it, so it cannot
    # read or destroy another backend's keys on the same Redis.
    key_prefix = "storage-host:prod:"
    # The redis plugin runs every request as a Lua script (EVALSHA). With
    # scripts the host confines the connection to key_prefix with a Redis
    # ACL user of its own, so even a script cannot leave the namespace.
    scripts = true
    # A dead Redis should answer UNAVAILABLE quickly, so that the plugin
    # falls back to its buffer at once (this is the default, made explicit).
    dial_timeout = "1s"
  }

  # Every write publishes an event (GET /v1/events), kept in a Redis
  # Stream in the namespace so every host sharing this Redis sees it and a
  # subscriber that reconnects resumes where it left off. Keep the last
  # 200 000 events (the default is 100 000 with Redis); a subscriber that
  # lets 1024 events pile up unread is disconnected (the default, made
  # explicit) and resumes from its last event.
  events {
    retention = 200000
    buffer    = 1024
  }

  # Agent states and alerts read through this host are kept in memory
  # until an event says they changed (on any host), so repeated reads do
  # not go to Redis. At most 50 000 records, least recently used out first,
  # each read from Redis again after 5 minutes whatever the events said
  # (a change whose event was lost is missed that long at most).
  cache {
    entries = 50000
    max_age = "5m"
  }
}

# Metrics are many, small and short-lived: memory is enough, and keeps
# them off Redis.
backend "metrics" {
  plugin  = "builtin:memory"
  options = { metric_ttl_seconds = 3600 }
}

# Two backends: routes must say which serves each kind, all three.
routes {
  metrics      = "metrics"
  alerts       = "redis"
  agent_states = "redis"
}
