// Package config reads the storage-host daemon's configuration: the
// backends it loads, which backend serves each record kind, and who may
// call it. Operators describe the backends in one HCL file, or its JSON
// form (a file whose name ends in .json); swapping a backend is editing
// the file. Reading a file is two steps, both strict, each reporting
// every error it finds at once with the file, line and column of the
// offending attribute or block:
//
//   - Parse (or Load) reads the file's text and nothing else: syntax,
//     schema (unknown blocks and attributes are errors), types and values,
//     names, routes and the other references between blocks, data
//     directories against each other, token scopes, and the secrets the
//     file holds itself (secret, password, a postgres url). It runs no plugin and reads no
//     plugin, secret file, environment variable or directory, so it is
//     cheap, deterministic and safe on any input.
//   - File.Check reads and judges what the text names: values that would
//     only fail later (an unreadable plugin, an ungranted capability, an
//     option the plugin refuses, a Redis block the bridge refuses, a
//     PostgreSQL URL that cannot be parsed, an unset secret) are errors
//     there. Only a checked File is served.
//
// The file:
//
//	listen = "127.0.0.1:8474"          # optional: host:port the daemon serves
//	max_event_streams = 1024            # optional, 1 to 1048576: event streams (GET /v1/events) open at once,
//	                                    # shared among client addresses; default 1024, or a quarter of the
//	                                    # process's limit on open files when lower; a reload applies it
//	max_connections = 16384             # optional, 1 to 1048576: connections held open; at the bound a new one
//	                                    # takes the place of an idle one (or one yet to send a request) of the
//	                                    # client address holding the most, else is closed; default 16384, or half
//	                                    # the process's limit on open files when lower; a reload applies it
//
//	log {                               # optional
//	  level  = "info"                   # trace|debug|info|warn|error; default info
//	  format = "text"                   # text|json; default text
//	}
//
//	backend "fast" {                    # one or more; the label names the backend ([a-z0-9_-]+, unique)
//	  plugin    = "builtin:local"       # required: builtin:local | builtin:memory | builtin:redis | builtin:postgres | path/to/plugin.wasm
//	                                    # (a relative path is relative to the configuration file)
//	  data_dir  = "/var/lib/fast"       # optional: where the backend's kv store lives, on disk
//	                                    # (builtin:local's records, builtin:redis's fallback buffer);
//	                                    # default DATA_DIR/backends/NAME (the daemon's -data-dir);
//	                                    # refused on builtin:memory, which keeps everything in memory;
//	                                    # relative to the configuration file; no two backends share one
//	  sha256    = "hex"                 # optional pin, checked against the plugin here
//	  trusted   = false                 # optional; default false: fuel checks, built-in plugins included
//	  instances = 8                     # optional, > 0; default: the host's (host.Config.Instances)
//	  capabilities = ["log", "clock", "kv"]   # optional; default host.DefaultCapabilities;
//	                                    # log, clock, kv, events; a redis block grants redis, a postgres block postgres
//	  options = {                       # optional; strings, numbers or bools, passed to the
//	    agent_state_ttl_seconds = 3600  # plugin as strings (numbers without exponent: "3600")
//	    fallback = "buffer"
//	  }
//	  limits {                          # optional; each attribute optional, default host.DefaultLimits
//	    memory_pages         = 1024
//	    call_timeout         = "5s"     # a Go duration
//	    max_response_bytes   = 16777216
//	    max_host_calls       = 100000
//	    log_lines_per_second = 100
//	    max_log_line_bytes   = 4096
//	    max_log_bytes_per_call = 1048576   # WASI stdout and stderr, per call
//	    max_kv_bytes           = 268435456 # the kv store: keys, values, 128 per entry
//	    max_kv_entries         = 1048576
//	    max_kv_scan_bytes      = 1048576   # one kv scan's entries
//	    max_events_per_call    = 100
//	  }
//	  redis {                           # optional: connects the backend to Redis (redisbridge.Config)
//	    url            = "redis://127.0.0.1:6379/0"   # or addrs; not both
//	    addrs          = ["127.0.0.1:6379"]
//	    cluster        = false
//	    master_name    = ""
//	    username       = ""
//	    password       = "..."          # at most one of password, password_env, password_file
//	    password_env   = "REDIS_PASSWORD"           # an environment variable, set and not empty
//	    password_file  = "/run/secrets/redis"       # its content, trailing newline trimmed
//	    db             = 0
//	    tls            = false
//	    pool_size      = 0
//	    min_idle_conns = 0
//	    dial_timeout   = "1s"
//	    read_timeout   = "2s"
//	    write_timeout  = "2s"
//	    pool_timeout   = "1s"
//	    max_retries    = 0
//	    key_prefix     = "storage-host:"  # required; may not overlap (start, or be the start of) another backend's on the same Redis and db
//	    allow_commands = []
//	    scripts        = true           # Lua scripts (the redis_scripts capability); default: true for a
//	                                    # built-in plugin that declares it runs them (builtin:redis, which
//	                                    # cannot serve without), false for any other plugin
//	  }
//	  postgres {                        # optional: connects the backend to PostgreSQL (host.PostgresConfig)
//	    url       = "postgres://admin:...@db:5432/fleet?sslmode=verify-full"
//	                                    # exactly one of url, url_env, url_file: a role that may create roles
//	                                    # and schemas; the host creates the schema and a role owning only it,
//	                                    # and runs every plugin statement as that role. TLS settings in the URL
//	    url_env   = "STORAGE_HOST_POSTGRES_URL"     # an environment variable, set and not empty
//	    url_file  = "/run/secrets/postgres-url"     # its content, trailing newline trimmed
//	    schema    = "agents"            # required: [a-z][a-z0-9_]*, at most 40 bytes; created if missing;
//	                                    # its role is storagehost_SCHEMA; daemons given one schema share its
//	                                    # records; two backends of a file may not have one on one database
//	    max_conns = 4                   # optional, > 0; default 4
//	    statement_timeout = "5s"        # optional: a call without a deadline, and migrations; default call_timeout
//	    temp_file_limit_mb = 1024       # optional, -1 or 1 to 2097151: the role's temporary files at once, set when
//	                                    # url's role is a superuser; -1 leaves the role's setting; default 1024
//	  }
//	  events {                          # optional: the backend's events (host.Config.Events)
//	    enabled   = true                # false turns them off; a cache or the events capability is then refused
//	    retention = 100000              # 1 to 2147483647: events kept to resume from; default 10000
//	                                    # in this process, 100000 in Redis or PostgreSQL
//	    buffer    = 1024                # 1 to 2147483647: events one subscriber may have waiting
//	    queue     = 65536               # 1 to 2147483647: events waiting for a Redis or PostgreSQL log
//	  }
//	  cache {                           # optional: a read cache of agent states and alerts (host.Config.Cache)
//	    entries = 50000                 # required, 1 to 2147483647: records held, least recently used out first
//	    max_age = "1m"                  # optional, a Go duration: an entry is read from the backend again
//	                                    # once this old, whatever the events said; default 1m
//	    max_bytes = 67108864            # optional, at least 1048576: bytes of records held, least recently
//	                                    # used out first; a record over a sixteenth of it is not cached;
//	                                    # default 64 MiB
//	  }
//	  backup {                          # optional: scheduled backups, written by the daemon
//	    interval         = "1h"         # required: a Go duration, at least 1s
//	    directory        = "backups"    # required: created if missing; relative to the configuration file
//	    keep             = 24           # optional, 1 to 100000; default 24: older backups are removed
//	    restore_on_start = false        # optional: restore the newest backup at daemon start
//	                                    # (builtin:memory and other backends without Redis, PostgreSQL or data directory)
//	  }
//	}
//
//	routes {                            # required with more than one backend; with one, every kind goes to it
//	                                    # (a kind its plugin does not store answers 501; validate says so)
//	  metrics      = "fast"             # all three required, each naming a backend whose plugin serves the kind
//	  alerts       = "fast"
//	  agent_states = "fast"
//	}
//
//	auth {                              # optional
//	  allow_unauthenticated = false     # serve a non-loopback address without tokens
//	  token "fleet" {                   # the label names the token ([a-z0-9_-]+, unique)
//	    secret_env = "STORAGE_HOST_TOKEN"   # exactly one of secret_env, secret_file, secret;
//	    # secret_file = "/run/secrets/token" # at least 16 bytes
//	    scopes = ["agent_states:read", "agent_states:write", "metrics:write", "*:read"]
//	  }
//	}
//
// Scopes are KIND:read or KIND:write, KIND one of metrics, alerts,
// agent_states or * (every kind). Relative secret, password and URL
// files, like plugins, are relative to the configuration file.
//
// Check reads every plugin a file names and inspects it (host.Inspect,
// which compiles and runs it) for the capabilities it imports or
// declares and the record kinds it serves, so that a plugin this host
// cannot load, or one needing a capability its backend does not grant
// (redis_scripts, say, of a plugin that runs Lua scripts in a backend
// without scripts = true), is refused here rather than when the daemon
// starts or at its first request. It connects to nothing and creates
// nothing: a Redis backend checks without Redis, a PostgreSQL one without
// PostgreSQL (the host creates its role and schema when it opens the
// backend), and data directories
// (WithDataDir, data_dir) are computed and checked against each other by
// Parse, not made. With Offline, Check reads no secret either, so a file
// checks where its secrets are not (CI). A daemon checking its file again
// at each reload keeps a PluginCache, so that an unchanged plugin is not
// compiled again.
package config
