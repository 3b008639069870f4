package host

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/internal/pgbridge"
)

// A PostgreSQL backend that does not open says whether its configuration
// must change (ErrInvalid) or the moment (ErrUnavailable).
func TestOpenFailureSaysWhoseItIs(t *testing.T) {
	for code, want := range map[string]error{
		"28P01": ErrInvalid,     // password authentication failed
		"3D000": ErrInvalid,     // no such database
		"42501": ErrInvalid,     // insufficient privilege
		"08006": ErrUnavailable, // connection failure
		"57P03": ErrUnavailable, // cannot connect now (starting up)
		"53300": ErrUnavailable, // too many connections
		"25006": ErrUnavailable, // read-only transaction: a standby
		"55P03": ErrUnavailable, // lock not available: hosts opening at once
		"40P01": ErrUnavailable, // deadlock
		"23505": ErrUnavailable, // a catalog row another host made at once
	} {
		err := fmt.Errorf("pgbridge: provisioning: %w", &pgconn.PgError{Code: code})
		require.Equal(t, want, openFailure(err), code)
	}
	require.Equal(t, ErrInvalid, openFailure(fmt.Errorf("%w: schema", pgbridge.ErrConfig)))
	require.Equal(t, ErrUnavailable, openFailure(errors.New("dial tcp 127.0.0.1:1: connection refused")))
}
