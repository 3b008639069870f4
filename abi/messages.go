package abi

import _ "embed" // messages.json

//go:embed messages.json
var messagesJSON string

// MessagesJSON returns messages.json, the machine-readable description of
// the ABI's messages (their fields in order, with their types), for code
// generators and for tools that name the field a byte belongs to.
func MessagesJSON() string { return messagesJSON }
