# redis-cluster.hcl — one Redis Cluster backend serving every kind, on a
# network address, so with bearer tokens. Secrets come from the
# environment and from files, never from this file.

# Every interface: tokens are then required (auth below).
listen = "0.0.0.0:8474"

log {
  # A log collector parses the lines.
  format = "json"
}

backend "redis" {
  plugin = "builtin:redis"

  # Pin the plugin of production: a binary upgrade that changes the
  # built-in module makes the daemon refuse to start until the pin is
  # updated (storage-host plugin inspect prints it). Left out here so the
  # example survives rebuilds of the built-in plugins.
  # sha256 = "..."

  options = {
    # Cluster down: fail writes (the plugin's default); callers retry.
    fallback                = "fail"
    metric_ttl_seconds      = 86400
    alert_ttl_seconds       = 1209600
    agent_state_ttl_seconds = 86400
  }

  redis {
    # Seed nodes: go-redis learns the rest of the cluster from any of them.
    addrs = [
      "redis-0.redis.internal:6379",
      "redis-1.redis.internal:6379",
      "redis-2.redis.internal:6379",
    ]
    # Several addresses already mean a cluster; cluster = true says so
    # outright, and keeps it a cluster if the list shrinks to one seed.
    cluster = true
    # Scripts need a user allowed to run ACL SETUSER (the host creates a
    # user confined to key_prefix for its own connections).
    username     = "storage-host-admin"
    password_env = "REDIS_PASSWORD"
    tls          = true
    # A cluster has only database 0: no db here.
    key_prefix = "storage-host:"
    scripts    = true
    # Several nodes: a few spare connections each avoid dialling under load.
    pool_size      = 32
    min_idle_conns = 4
  }
}

# One backend: it serves every kind, no routes block needed.

auth {
  # Tokens are set, so this does not matter; false says a mistake that
  # dropped every token must not open the daemon to the network.
  allow_unauthenticated = false

  # The agent fleet: writes its own metrics, alerts and states, and reads
  # states back. It cannot read metrics or alerts (write does not imply
  # read).
  token "fleet" {
    secret_env = "STORAGE_HOST_FLEET_TOKEN"
    scopes     = ["metrics:write", "alerts:write", "agent_states:read", "agent_states:write"]
  }

  # A dashboard reads everything and writes nothing. Its token is a file
  # (a mounted secret), relative to this configuration file; its trailing
  # newline is trimmed.
  token "dashboard" {
    secret_file = "secrets/dashboard.token"
    scopes      = ["*:read"]
  }
}
