# postgres.hcl — metrics, alerts and agent states in PostgreSQL, where they
# survive a restart of the daemon, a crash and a Redis flush, and where
# every daemon given the same database and schema shares them. Check it
# without its secret (as CI does) with:
#   storage-host validate -offline testdata/config/postgres.hcl

listen = "127.0.0.1:8474"

backend "pg" {
  # The postgres plugin is built into the host. It imports the postgres
  # capability, which the postgres block below grants; capabilities is
  # left out, so it gets log, clock and kv besides.
  plugin = "builtin:postgres"

  # Each instance is held for a whole PostgreSQL round trip, so a
  # PostgreSQL backend wants more instances than CPUs.
  instances = 16

  options = {
    # Metrics expire after a week, alerts after two, agent states a day
    # after their last write; expired rows are never returned and are
    # removed by a bounded sweep.
    metric_ttl_seconds      = 604800
    alert_ttl_seconds       = 1209600
    agent_state_ttl_seconds = 86400
  }

  limits {
    # A call includes a PostgreSQL round trip: the statements of a call
    # are cancelled in the server once it passes this.
    call_timeout = "10s"
  }

  postgres {
    # A role that may create roles and schemas: a superuser (a role with
    # CREATEROLE alone cannot, on PostgreSQL 15, create a schema owned by
    # the role it created). The host uses it when it opens the
    # backend, to create the schema below and a role that owns that
    # schema and nothing else ("storagehost_agents"), and only to LISTEN
    # for event notifications afterwards: every statement of the plugin
    # runs as the backend's role. The URL holds a password, so it is read
    # from the environment (url_env; url_file reads it from a file, url
    # takes it inline), like a Redis password. TLS settings go in the URL
    # (sslmode=verify-full&sslrootcert=...).
    url_env = "STORAGE_HOST_POSTGRES_URL"
    # Required: the backend's schema, created when missing. Daemons given
    # one schema on one database share its records (and their events);
    # two backends of one file may not have the same.
    schema = "agents"
    # At most 8 connections (the default is 4).
    max_conns = 8
    # Bounds the statements of a call without a deadline, and the
    # plugin's schema migrations at load (default: call_timeout).
    statement_timeout = "5s"
  }

  # Every write publishes an event (GET /v1/events), appended to the
  # table storagehost_events in the backend's schema, so every daemon
  # sharing the schema sees it and a subscriber that reconnects resumes
  # where it left off. The table keeps the last 100 000 events (the
  # default with PostgreSQL).
  events {
    retention = 100000
  }

  # Agent states and alerts read through this daemon stay in memory until
  # an event says they changed, on any daemon sharing the schema.
  cache {
    entries = 50000
  }
}
