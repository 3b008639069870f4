package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestPostgresThatNeverAnswersFailsTheOpen: a PostgreSQL address that
// takes connections and never answers (pgx waits for the startup's reply
// with no deadline of its own) fails the open within its bound, as one
// that refuses them does: an outside drill's daemon waited on it past
// 80 s, its reloads and other backends' attempts with it.
func TestPostgresThatNeverAnswersFailsTheOpen(t *testing.T) {
	t.Parallel()
	hole := redistest.Unanswering(t)
	start := time.Now()
	_, err := host.Open(context.Background(), host.Config{Plugin: "builtin:postgres", Postgres: &host.PostgresConfig{
		URL: "postgres://postgres@" + hole + "/test?sslmode=disable", Schema: "never_answers",
	}}, host.WithCompilationCache(""))
	require.ErrorIs(t, err, host.ErrUnavailable)
	require.Less(t, time.Since(start), 30*time.Second, "the open waited past its bound")
}
