# storage-host configuration: every block and attribute, with its default.
# Printed by `storage-host help config`. This file is itself a valid
# configuration (`storage-host validate -offline` accepts it); alternatives
# that exclude each other are commented out.
#
# HCL syntax; a file whose name ends in .json is read as HCL's JSON form.
# Relative paths (plugins, data directories, secret files, backups) are
# relative to the configuration file. Errors name file:line:col.

listen            = "127.0.0.1:8474" # optional: host:port the daemon serves
max_event_streams = 1024             # optional, 1 to 1048576: event streams (GET /v1/events) open at once,
                                     # shared among client addresses; default 1024, or a quarter of the
                                     # process's limit on open files when lower; a reload applies it
max_connections   = 16384            # optional, 1 to 1048576: connections held open; at the bound a new one
                                     # takes the place of an idle one (or one yet to send a request) of the
                                     # client address holding the most, else is closed; default 16384, or half
                                     # the process's limit on open files when lower; a reload applies it

log {                # optional
  level  = "info"    # trace | debug | info | warn | error; default info
  format = "text"    # text | json; default text
}

# One or more backends; the label names one ([a-z0-9_-]+, unique).
backend "fast" {
  plugin    = "builtin:local"  # required: builtin:local | builtin:memory | builtin:redis | builtin:postgres
                               # | path/to/plugin.wasm
  data_dir  = "data/fast"      # optional: where the backend's kv store lives, on disk (builtin:local's
                               # records, builtin:redis's fallback buffer); default DATA_DIR/backends/NAME
                               # (the daemon's -data-dir); refused on builtin:memory, which keeps
                               # everything in memory; no two backends share one
  # sha256  = "hex"            # optional: the plugin's SHA-256, checked before it is loaded
  trusted   = false            # optional; default false: fuel checks, built-in plugins included
  instances = 8                # optional, > 0; default: the host's (host.Config.Instances)
  capabilities = ["log", "clock", "kv"]  # optional; default log, clock, kv; also events.
                               # A redis block grants redis, a postgres block postgres.
  options = {}                 # optional: strings, numbers or bools passed to the plugin as strings
                               # (numbers without exponent: 3600 is "3600"); each plugin documents its
                               # own: the built-ins' in README.md ("Configure it") and abi/README.md
                               # (section 10.6), where the TTL options every plugin reads are named

  limits {                          # optional; each attribute optional, default host.DefaultLimits
    memory_pages           = 1024   # 64 KiB pages of the plugin's linear memory
    call_timeout           = "5s"   # a Go duration
    max_response_bytes     = 16777216
    max_host_calls         = 100000 # host-function calls (log, clock, kv) in one request
    log_lines_per_second   = 100
    max_log_line_bytes     = 4096
    max_log_bytes_per_call = 1048576   # WASI stdout and stderr, per call
    max_kv_bytes           = 268435456 # the kv store: keys, values, 128 per entry
    max_kv_entries         = 1048576
    max_kv_scan_bytes      = 1048576   # one kv scan's entries
    max_events_per_call    = 100
  }

  backup {                      # optional: scheduled backups, written by the daemon
    interval         = "1h"     # required: a Go duration, at least 1s
    directory        = "backups/fast"  # required: created if missing
    keep             = 24       # optional, 1 to 100000; default 24: older backups are removed
    restore_on_start = false    # optional: restore the newest backup that verifies at daemon start
                                # (builtin:memory and other backends without Redis, PostgreSQL or data
                                # directory)
  }
}

backend "redis" {
  plugin  = "builtin:redis"
  options = {                       # builtin:redis's options
    metric_ttl_seconds      = 604800
    alert_ttl_seconds       = 2592000
    agent_state_ttl_seconds = 86400
    fallback                = "buffer"  # fail | buffer: while Redis is away, refuse writes (503)
                                        # or keep them on disk and replay them
  }

  redis {                           # optional: connects the backend to Redis (redisbridge.Config)
    url            = "redis://127.0.0.1:6379/0"  # exactly one of url and addrs
    # addrs        = ["127.0.0.1:6379"]
    cluster        = false
    master_name    = ""             # a Sentinel master: addrs are then the sentinels
    username       = ""
    password_env   = "REDIS_PASSWORD"  # at most one of password, password_env (set and not empty)
    # password      = "..."           # and password_file (its content, trailing newline trimmed)
    # password_file = "/run/secrets/redis"
    db             = 0
    tls            = false
    pool_size      = 0              # connections per node; 0: 10 per CPU (go-redis)
    min_idle_conns = 0
    dial_timeout   = "1s"
    read_timeout   = "2s"
    write_timeout  = "2s"
    pool_timeout   = "1s"
    max_retries    = 0
    key_prefix     = "storage-host:"  # required; may not overlap (start, or be the start of) another
                                      # backend's on the same Redis and db
    allow_commands = []             # commands granted beyond the default allowlist
    scripts        = true           # Lua scripts (the redis_scripts capability); default: true for a
                                    # built-in plugin that runs them (builtin:redis cannot serve
                                    # without), false for any other plugin
  }

  events {                  # optional: the backend's events (host.Config.Events)
    enabled   = true        # false turns them off; a cache or the events capability is then refused
    retention = 100000      # 1 to 2147483647: events kept to resume from; default 10000 in this
                            # process, 100000 in Redis or PostgreSQL
    buffer    = 1024        # 1 to 2147483647: events one subscriber may have waiting
    queue     = 65536       # 1 to 2147483647: events waiting for a Redis or PostgreSQL log
  }

  cache {                   # optional: a read cache of agent states and alerts (host.Config.Cache)
    entries   = 50000       # required, 1 to 2147483647: records held, least recently used out first
    max_age   = "1m"        # optional, a Go duration: an entry is read from the backend again once
                            # this old, whatever the events said; default 1m
    max_bytes = 67108864    # optional, at least 1048576: bytes of records held; a record over a
                            # sixteenth of it is not cached; default 64 MiB
  }
}

backend "pg" {
  plugin = "builtin:postgres"

  postgres {                # optional: connects the backend to PostgreSQL (host.PostgresConfig)
    url_env  = "STORAGE_HOST_POSTGRES_URL"  # exactly one of url, url_env (set and not empty) and
    # url    = "postgres://admin:...@db:5432/fleet?sslmode=verify-full"   # url_file (its content,
    # url_file = "/run/secrets/postgres-url"                             # trailing newline trimmed):
                            # a role that may create roles and schemas; the host creates the schema
                            # and a role owning only it, and runs every plugin statement as that
                            # role. TLS settings go in the URL.
    schema   = "agents"     # required: [a-z][a-z0-9_]*, at most 40 bytes; created if missing; its role
                            # is storagehost_SCHEMA; daemons given one schema share its records; two
                            # backends of a file may not have one on one database
    max_conns = 4           # optional, > 0; default 4
    statement_timeout  = "5s"  # optional: a call without a deadline, and migrations; default call_timeout
    temp_file_limit_mb = 1024  # optional, -1 or 1 to 2097151: the role's temporary files at once, set
                               # when url's role is a superuser; -1 leaves the role's setting
  }
}

# Required with more than one backend; with one, every kind goes to it (a kind its
# plugin does not store answers 501; validate says so).
routes {
  metrics      = "fast"     # all three required, each naming a backend whose plugin serves the kind
  alerts       = "pg"
  agent_states = "redis"
}

auth {                              # optional
  allow_unauthenticated = false     # serve a non-loopback address without tokens
  token "fleet" {                   # one or more; the label names the token ([a-z0-9_-]+, unique)
    secret_env = "STORAGE_HOST_TOKEN"   # exactly one of secret_env, secret_file and secret;
    # secret_file = "/run/secrets/token" # at least 16 bytes
    # secret    = "..."
    scopes = ["agent_states:read", "agent_states:write", "metrics:write", "*:read"]
                                    # KIND:read or KIND:write, KIND one of metrics, alerts,
                                    # agent_states or * (every kind)
  }
}
