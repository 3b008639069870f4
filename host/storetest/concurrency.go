package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// Hammer size: workers goroutines each make increments successful
// read-modify-write cycles on one agent state.
const (
	hammerWorkers    = 8
	hammerIncrements = 25
	// hammerAttempts bounds the conflicts one increment may meet.
	hammerAttempts = 10000
)

func (s *suite) testConcurrency(t *testing.T) {
	if !s.has(abi.FeatureAgentStates) {
		t.Skip("conditions apply to agent states, which the backend does not advertise")
	}
	if !s.has(abi.FeatureConcurrency) {
		t.Run("Refused", s.refuseConcurrency)
		return
	}
	ctx := t.Context()
	st := s.st

	t.Run("IfVersionCurrent", func(t *testing.T) {
		p := s.prefix()
		v1, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("one")})
		require.NoError(t, err)
		v2, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("two")}, host.IfVersion(v1.Version))
		require.NoError(t, err, "IfVersion with the current version")
		require.NotEqual(t, v1.Version, v2.Version, "a conditional write must change the version")
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err)
		requireState(t, v2, got)
	})

	t.Run("IfVersionStale", func(t *testing.T) {
		p := s.prefix()
		v1, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("one")})
		require.NoError(t, err)
		v2, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("two")})
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("three")}, host.IfVersion(v1.Version))
		require.ErrorIs(t, err, host.ErrConflict, "IfVersion with a stale version")
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err)
		requireState(t, v2, got, "a write whose condition failed must write nothing")
	})

	t.Run("IfVersionMissing", func(t *testing.T) {
		p := s.prefix()
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")}, host.IfVersion(1))
		require.ErrorIs(t, err, host.ErrConflict, "IfVersion on a missing state: the record must exist with that version")
		_, err = st.GetAgentState(ctx, p+"agent")
		require.ErrorIs(t, err, host.ErrNotFound, "a write whose condition failed must write nothing")
	})

	t.Run("IfAbsentNew", func(t *testing.T) {
		p := s.prefix()
		put, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")}, host.IfAbsent())
		require.NoError(t, err, "IfAbsent on a new agent")
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err)
		requireState(t, put, got)
	})

	t.Run("IfAbsentExisting", func(t *testing.T) {
		p := s.prefix()
		old, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("old")})
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("new")}, host.IfAbsent())
		require.ErrorIs(t, err, host.ErrConflict, "IfAbsent on an existing state")
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err)
		requireState(t, old, got, "a write whose condition failed must write nothing")
	})

	t.Run("DeleteIfVersion", func(t *testing.T) {
		p := s.prefix()
		v1, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("one")})
		require.NoError(t, err)
		v2, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("two")})
		require.NoError(t, err)
		require.ErrorIs(t, st.DeleteAgentState(ctx, p+"agent", host.IfVersion(v1.Version)), host.ErrConflict,
			"delete with a stale version")
		got, err := st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err, "a delete whose condition failed must delete nothing")
		requireState(t, v2, got)
		require.NoError(t, st.DeleteAgentState(ctx, p+"agent", host.IfVersion(v2.Version)), "delete with the current version")
		_, err = st.GetAgentState(ctx, p+"agent")
		require.ErrorIs(t, err, host.ErrNotFound)
	})

	t.Run("DeleteIfVersionMissing", func(t *testing.T) {
		// The contract allows either answer: the record is missing
		// (NotFound) and the condition fails (Conflict). Success is wrong.
		p := s.prefix()
		err := st.DeleteAgentState(ctx, p+"agent", host.IfVersion(1))
		if !errors.Is(err, host.ErrNotFound) && !errors.Is(err, host.ErrConflict) {
			t.Fatalf("delete with IfVersion of a missing state: got %v, want ErrNotFound or ErrConflict", err)
		}
	})

	t.Run("DeleteIfAbsent", func(t *testing.T) {
		p := s.prefix()
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x")})
		require.NoError(t, err)
		require.ErrorIs(t, st.DeleteAgentState(ctx, p+"agent", host.IfAbsent()), host.ErrInvalid,
			"a delete cannot be create-only (abi.DeleteAgentState takes Unconditional or IfVersion)")
		_, err = st.GetAgentState(ctx, p+"agent")
		require.NoError(t, err, "a refused delete deleted the state")
	})

	t.Run("StaleAfterRecreate", func(t *testing.T) {
		// A version from before a delete must not match the record
		// created after it (no ABA).
		p := s.prefix()
		v1, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("one")})
		require.NoError(t, err)
		require.NoError(t, st.DeleteAgentState(ctx, p+"agent"))
		v2, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("two")}, host.IfAbsent())
		require.NoError(t, err, "IfAbsent after a delete")
		require.NotEqual(t, v1.Version, v2.Version, "the re-created state reuses the version of the deleted one")
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("three")}, host.IfVersion(v1.Version))
		require.ErrorIs(t, err, host.ErrConflict, "IfVersion with the version of the deleted state")
	})

	t.Run("Hammer", s.hammer)
}

// hammer runs concurrent read-modify-write increments of one counter with
// IfVersion retries: no update may be lost, and no two successful writes
// may return the same version.
func (s *suite) hammer(t *testing.T) {
	ctx := t.Context()
	st := s.st
	id := s.prefix() + "counter"
	first, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("0")}, host.IfAbsent())
	require.NoError(t, err)

	var (
		mu        sync.Mutex
		versions  = map[uint64]bool{first.Version: true}
		conflicts int
		errs      []error
		wg        sync.WaitGroup
	)
	increment := func() error {
		for range hammerAttempts {
			cur, err := st.GetAgentState(ctx, id)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			n, err := strconv.Atoi(string(cur.State))
			if err != nil {
				return fmt.Errorf("the counter holds %q: %w", cur.State, err)
			}
			put, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(strconv.Itoa(n + 1))}, host.IfVersion(cur.Version))
			if errors.Is(err, host.ErrConflict) {
				mu.Lock()
				conflicts++
				mu.Unlock()
				continue
			}
			if err != nil {
				return fmt.Errorf("put: %w", err)
			}
			mu.Lock()
			dup := versions[put.Version]
			versions[put.Version] = true
			mu.Unlock()
			if dup {
				return fmt.Errorf("version %d returned by two successful writes", put.Version)
			}
			return nil
		}
		return fmt.Errorf("no success after %d attempts", hammerAttempts)
	}
	for range hammerWorkers {
		wg.Go(func() {
			for range hammerIncrements {
				if err := increment(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	got, err := st.GetAgentState(ctx, id)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(hammerWorkers*hammerIncrements), string(got.State),
		"%d increments succeeded, so the counter must say so (lost updates)", hammerWorkers*hammerIncrements)
	t.Logf("%d increments by %d goroutines, %d conflicts retried", hammerWorkers*hammerIncrements, hammerWorkers, conflicts)
}

func (s *suite) refuseConcurrency(t *testing.T) {
	ctx := t.Context()
	p := s.prefix()
	old, err := s.st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("old")})
	require.NoError(t, err)
	_, err = s.st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("new")}, host.IfVersion(old.Version))
	requireUnsupported(t, err, "PutAgentState with IfVersion")
	_, err = s.st.PutAgentState(ctx, host.AgentState{AgentID: p + "new", State: []byte("new")}, host.IfAbsent())
	requireUnsupported(t, err, "PutAgentState with IfAbsent")
	requireUnsupported(t, s.st.DeleteAgentState(ctx, p+"agent", host.IfVersion(old.Version)), "DeleteAgentState with IfVersion")
	got, err := s.st.GetAgentState(ctx, p+"agent")
	require.NoError(t, err, "a refused conditional delete deleted the state")
	requireState(t, old, got, "a refused conditional write changed the state")
	_, err = s.st.GetAgentState(ctx, p+"new")
	require.ErrorIs(t, err, host.ErrNotFound, "a refused IfAbsent write stored a state")
}
