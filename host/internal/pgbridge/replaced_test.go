package pgbridge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// replacePrepared has the bridge prepare SELECT 1 on its connection and
// then the plugin's own SQL swap that statement for one of three columns,
// under the same name: the name is read from pg_prepared_statements, and
// PL/pgSQL's EXECUTE hides the PREPARE from the command tags the bridge
// sees.
//
// A call of 2 ms or more ends with the whole session reset, whose
// DEALLOCATE ALL drops the bridge's statements and the replacement with
// them, as does the reset after fullResetWork of quicker calls; these
// tests are of a connection that no full reset reaches between the
// replacement and the call, however long the machine takes for them.
func replacePrepared(t *testing.T, b *Bridge) {
	t.Helper()
	b.resetAfter, b.resetWork = time.Hour, time.Hour
	b.sessionWork = time.Hour // nor a new session
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt(`DO $$ DECLARE n text; BEGIN
		SELECT name INTO n FROM pg_prepared_statements WHERE statement = 'SELECT 1';
		EXECUTE format('DEALLOCATE %I', n);
		EXECUTE format('PREPARE %I AS SELECT 1, 2, 3', n);
	END $$`))
	require.NoError(t, err)
	mustOK(t, rs)
}

// A statement the bridge prepared and a plugin replaced behind its back
// returns rows of another shape than the description the bridge holds:
// the call fails, the connection is dropped, and the next call works.
// Before, the bridge indexed the description by the row's values and
// panicked: a trap of the calling instance that leaked the call's slot.
func TestReplacedPreparedStatementFailsItsCall(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	replacePrepared(t, b)

	_, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.ErrorIs(t, err, abi.StatusUnknown)
	require.ErrorContains(t, err, "3 values")
	require.Zero(t, b.pipes.Running(), "the call's slot is free again")

	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, []abi.PGValue{integer(1)}, rs[0].Row(0))
}

// The same in a pipeline of queued reads, which a flusher goroutine of
// the bridge sends: before, the panic there ended the whole process.
func TestReplacedPreparedStatementInASharedPipeline(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	replacePrepared(t, b)

	release, queued := occupy(t, b)
	var poisoned, other answer
	var wg sync.WaitGroup
	wg.Go(func() { poisoned.rs, poisoned.err = call(ctx, b, abi.PGBatch, stmt("SELECT 1")) })
	queued(1)
	wg.Go(func() { other.rs, other.err = call(ctx, b, abi.PGBatch, stmt("SELECT 2")) })
	queued(2)
	release()
	wg.Wait()
	require.ErrorIs(t, poisoned.err, abi.StatusUnknown)
	// The read behind it in the pipeline lost its connection: a failure
	// of the same backend's call, never a crash.
	if other.err != nil {
		require.ErrorIs(t, other.err, abi.StatusUnknown)
	}

	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, []abi.PGValue{integer(1)}, rs[0].Row(0))
}
