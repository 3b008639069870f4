package config_test

import (
	"context"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// pluginCache is the tests' plugin cache: a module is compiled and inspected
// once per test binary, as once per daemon.
var pluginCache config.PluginCache

// parseChecked parses src and checks the File, as the daemon does before
// serving it.
func parseChecked(src []byte, filename string, opts ...config.Option) (*config.File, error) {
	f, err := config.Parse(src, filename, opts...)
	if err != nil {
		return nil, err
	}
	if err := f.Check(context.Background(), config.WithPluginCache(&pluginCache)); err != nil {
		return nil, err
	}
	return f, nil
}

// loadChecked loads the file at path and checks it.
func loadChecked(path string, opts ...config.Option) (*config.File, error) {
	f, err := config.Load(path, opts...)
	if err != nil {
		return nil, err
	}
	if err := f.Check(context.Background(), config.WithPluginCache(&pluginCache)); err != nil {
		return nil, err
	}
	return f, nil
}
