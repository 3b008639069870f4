# broken.hcl — three mistakes, each reported with its position by
# `storage-host validate` and by `serve -config`, all at once.

backend "memory" {
  plugin    = "builtin:memory"
  instances = 0
  colour    = "blue"
}

routes {
  metrics      = "memory"
  alerts       = "memory"
  agent_states = "disk"
}
