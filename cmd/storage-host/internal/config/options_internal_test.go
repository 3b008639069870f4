package config

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/require"
)

// TestOptionValues checks how option values of each type become strings.
// It calls the checker directly: a real plugin would refuse these names.
func TestOptionValues(t *testing.T) {
	expr, diags := hclsyntax.ParseExpression([]byte(`{
    int     = 3600
    big     = 1e20
    frac    = 0.25
    neg     = -7
    yes     = true
    text    = "buffer"
    "a.b"   = "quoted key"
  }`), "o.hcl", hcl.InitialPos)
	require.False(t, diags.HasErrors(), diags.Error())
	c := newChecker("o.hcl", options{})
	got := c.options(expr)
	require.False(t, c.diags.HasErrors(), c.diags.Error())
	require.Equal(t, map[string]string{
		"int": "3600", "big": "100000000000000000000", "frac": "0.25", "neg": "-7",
		"yes": "true", "text": "buffer", "a.b": "quoted key",
	}, got)
}
