# memory.hcl — one backend that keeps everything in memory, with record
# TTLs: for tests and scratch work. The daemon without a file serves
# builtin:local instead, the same plugin with its records on disk in the
# data directory (-data-dir), which survive restarts. Check it with:
#   storage-host validate testdata/config/memory.hcl

# Loopback only: with no auth block, the daemon refuses a non-loopback
# address (see auth.allow_unauthenticated), so this is the safe default.
listen = "127.0.0.1:8474"

log {
  # info logs backend loads and reloads, not every request.
  level = "info"
  # text is for a terminal; use json when a collector parses the log.
  format = "text"
}

# One backend, so it serves metrics, alerts and agent states: no routes
# block is needed.
backend "memory" {
  # The memory plugin is built into the host: nothing to install, and
  # everything is lost on restart, on a crash and on a reload that
  # rebuilds the backend (it takes no data_dir). builtin:local keeps the
  # same records on disk. Built-in plugins are always trusted.
  plugin = "builtin:memory"

  # capabilities is left out: the default grant (log, clock, kv) is
  # exactly what the memory plugin needs; it keeps its records in the
  # host's kv store.

  # The memory plugin's options, as seconds. A number is passed to the
  # plugin as a string ("3600"). 0 would mean "never expires".
  options = {
    metric_ttl_seconds      = 86400  # a day of metrics
    alert_ttl_seconds       = 604800 # alerts stay a week
    agent_state_ttl_seconds = 3600   # an agent silent for an hour is gone
  }

  # The limits block is left out: host.DefaultLimits (64 MiB of guest
  # memory, 5s per call, ...) suit the built-in plugin.
}
