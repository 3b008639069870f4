# auth.hcl — one memory backend behind bearer tokens of different reach.
# The secrets come from the environment the tests start the daemon with.

backend "memory" {
  plugin = "builtin:memory"
}

auth {
  # Everything.
  token "admin" {
    secret_env = "E2E_ADMIN_TOKEN"
    scopes     = ["*:read", "*:write"]
  }
  # Reads agent states, writes nothing.
  token "states-reader" {
    secret_env = "E2E_READER_TOKEN"
    scopes     = ["agent_states:read"]
  }
  # Metrics only, both ways.
  token "metrics" {
    secret_env = "E2E_METRICS_TOKEN"
    scopes     = ["metrics:read", "metrics:write"]
  }
}
