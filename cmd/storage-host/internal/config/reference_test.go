package config

import (
	"context"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The reference is a file Parse and an offline Check accept, so that what
// it shows is what the daemon reads.
func TestReferenceIsAValidFile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the built-in plugins; skipped with -short")
	}
	f, err := Parse([]byte(Reference()), "reference.hcl", WithDataDir(t.TempDir()))
	require.NoError(t, err)
	require.NoError(t, f.Check(context.Background(), Offline()))
	require.Len(t, f.Backends, 3)
}

// Every block and attribute Parse decodes is in the reference, set or
// commented out (one of the alternatives that exclude each other), at the
// depth of its block: a new attribute without its line fails here.
func TestReferenceNamesEveryAttribute(t *testing.T) {
	lines := strings.Split(Reference(), "\n")
	var missing []string
	var walk func(typ reflect.Type, path string, depth int)
	walk = func(typ reflect.Type, path string, depth int) {
		for i := range typ.NumField() {
			field := typ.Field(i)
			tag, kind, _ := strings.Cut(field.Tag.Get("hcl"), ",")
			if tag == "" || kind == "label" || kind == "remain" {
				continue
			}
			indent := strings.Repeat("  ", depth)
			var line *regexp.Regexp
			if kind == "block" {
				line = regexp.MustCompile(`^` + indent + tag + `( "[a-z0-9_-]+")? \{`)
			} else {
				line = regexp.MustCompile(`^` + indent + `(# ?)?` + tag + ` *=`)
			}
			if !slices.ContainsFunc(lines, line.MatchString) {
				missing = append(missing, path+tag)
			}
			if kind == "block" {
				sub := field.Type
				for sub.Kind() == reflect.Pointer || sub.Kind() == reflect.Slice {
					sub = sub.Elem()
				}
				walk(sub, path+tag+".", depth+1)
			}
		}
	}
	walk(reflect.TypeFor[rawFile](), "", 0)
	require.Empty(t, missing, "reference.hcl lacks these blocks or attributes")
}
