package redisbridge

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEListsTheAllowlist keeps the README's lists of the commands a
// plugin may send, by default and once granted, equal to the table's:
// plugin authors, who may write in any language, read the README, not
// this package.
func TestREADMEListsTheAllowlist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var byDefault, granted []string
	for _, c := range commandTable {
		if c.data == allow {
			byDefault = append(byDefault, strings.ToUpper(c.name))
		} else {
			granted = append(granted, strings.ToUpper(c.name))
		}
	}
	for _, list := range []struct {
		marker string
		want   []string
	}{{"default", byDefault}, {"granted", granted}} {
		m := regexp.MustCompile(`(?s)<!-- redis-allowlist:` + list.marker + ` -->\n(.*?)<!-- /redis-allowlist:` + list.marker + ` -->`).FindSubmatch(readme)
		if m == nil {
			t.Errorf("README.md has no redis-allowlist:%s list", list.marker)
			continue
		}
		got := strings.FieldsFunc(string(m[1]), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
		if !slices.Equal(got, list.want) {
			t.Errorf("README.md's redis-allowlist:%s list is\n%s\nwant (the table's order)\n%s", list.marker, strings.Join(got, ", "), strings.Join(list.want, ", "))
		}
	}
}
