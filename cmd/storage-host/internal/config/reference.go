package config

import _ "embed"

//go:embed reference.hcl
var reference string

// Reference returns the configuration reference: a file holding every
// block and attribute Parse reads, each with its bounds and default in a
// comment, and itself a valid configuration.
func Reference() string { return reference }
