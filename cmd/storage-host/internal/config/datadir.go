package config

import (
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/storage-host/storage-host/host"
)

// An Option changes how Load, Parse and Default read a configuration.
type Option func(*options)

type options struct {
	dataDir string
}

// WithDataDir sets the directory the daemon keeps its data in. Every
// backend whose plugin is not builtin:memory, and whose block sets no
// data_dir, keeps its kv store (host.Config.DataDir) in dir/backends/NAME;
// a backend's data_dir may not be, hold or lie inside another backend's
// directory, nor hold dir itself. Without it such a backend keeps its kv
// store in memory, and builtin:local, which needs a directory, must set
// data_dir.
func WithDataDir(dir string) Option {
	return func(o *options) { o.dataDir = dir }
}

func collect(opts []Option) options {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// BackendsDir is the directory, under the data directory, holding the
// directory of each backend without a data_dir of its own.
const BackendsDir = "backends"

// backendDataDir returns host.Config.DataDir for the backend rb, whose
// plugin is plugin (as resolved; "" when invalid): "" for builtin:memory,
// which keeps its records in memory only.
func (c *checker) backendDataDir(rb *rawBackend, plugin string) string {
	memory := plugin == host.BuiltinPrefix+"memory"
	if _, set, _ := c.peek(rb.DataDir); set {
		dir, ok := c.str(rb.DataDir, "data_dir")
		switch {
		case !ok:
			return ""
		case memory:
			c.errorf(rb.DataDir.Range(), `Invalid value for "data_dir"`,
				"builtin:memory keeps its records in memory only and takes no data_dir; builtin:local is the same backend with its records on disk.")
			return ""
		case dir == "":
			c.errorf(rb.DataDir.Range(), `Invalid value for "data_dir"`, "data_dir names the directory the backend keeps its data in.")
			return ""
		}
		dir = c.path(dir)
		if c.dataDir != "" && within(dir, c.dataDir) {
			c.errorf(rb.DataDir.Range(), `Invalid value for "data_dir"`,
				"%s holds the daemon's data directory %s, which holds the directory of every backend without a data_dir; choose a directory of the backend's own.", dir, c.dataDir)
			return ""
		}
		return dir
	}
	switch {
	case memory:
		return ""
	case c.dataDir == "":
		if plugin == host.BuiltinPrefix+"local" {
			c.errorf(rb.Plugin.Range(), "Missing data directory",
				"builtin:local keeps its records on disk: set data_dir, or serve with a data directory.")
		}
		return ""
	case !validName.MatchString(rb.Name):
		return "" // reported by name
	}
	return filepath.Join(c.dataDir, BackendsDir, rb.Name)
}

// dataDir is where a backend keeps its data, and the range naming it.
type dataDir struct {
	backend, dir string
	rng          hcl.Range
}

// distinctDataDir refuses d when its directory is, holds or lies inside
// the directory of a backend before it: both would keep their data in the
// same files, or one among the other's.
func (c *checker) distinctDataDir(seen []dataDir, d dataDir) []dataDir {
	for _, o := range seen {
		if within(o.dir, d.dir) || within(d.dir, o.dir) {
			how := "is"
			switch {
			case o.dir == d.dir:
			case within(o.dir, d.dir):
				how = "lies inside"
			default:
				how = "holds"
			}
			c.errorf(d.rng, "Shared data directory",
				"Backend %q's data directory %s %s backend %q's, %s (at %s): two backends may not share their data. Give each a data_dir of its own, or none.",
				d.backend, d.dir, how, o.backend, o.dir, o.rng)
			return seen
		}
	}
	return append(seen, d)
}

// within reports whether path is dir or lies inside it; both are clean
// and absolute.
func within(dir, path string) bool {
	if path == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}
