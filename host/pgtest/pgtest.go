// Package pgtest gives tests a real PostgreSQL, and a schema of their own
// on it that they leave behind clean. No test in this repository mocks
// PostgreSQL.
//
// Which PostgreSQL a test gets (URL):
//
//  1. STORAGE_HOST_TEST_POSTGRES (a postgres:// URL of a role that may
//     create roles and schemas), when set; a test fails if it cannot be
//     reached.
//  2. postgres://postgres@127.0.0.1:5432/test, when it answers.
//  3. A server of the test binary's own (initdb into a temporary
//     directory, trust authentication, a free loopback port), started once
//     and shared by the binary's tests, when initdb and pg_ctl are found
//     on PATH, in /usr/local/bin or in /usr/lib/postgresql/*/bin.
//
// When none works the test is skipped, or, when the CI environment
// variable is set, fails: CI must never pass by skipping.
//
// It is a public package, beside host/redistest, because the tests of
// cmd/storage-host need it too and cannot import host/internal.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points tests at a
// PostgreSQL.
const EnvURL = "STORAGE_HOST_TEST_POSTGRES"

// DefaultURL is the PostgreSQL tried when EnvURL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

const startTimeout = 30 * time.Second

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: %s (CI is set: a test needing PostgreSQL must not skip)", msg)
	}
	t.Skipf("pgtest: %s", msg)
}

func answers(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

var (
	once     sync.Once
	found    string
	foundErr error
)

// URL returns the URL of an admin role of a real PostgreSQL, or skips t
// (fails it under CI).
func URL(t testing.TB) string {
	t.Helper()
	if url := os.Getenv(EnvURL); url != "" {
		if err := answers(url); err != nil {
			t.Fatalf("pgtest: %s=%s does not answer: %v", EnvURL, url, err)
		}
		return url
	}
	once.Do(func() {
		if answers(DefaultURL) == nil {
			found = DefaultURL
			return
		}
		found, _, foundErr = start("")
	})
	if foundErr != nil {
		unavailable(t, "no PostgreSQL at %s and none could be started: %v", DefaultURL, foundErr)
	}
	return found
}

func binary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	cands := []string{filepath.Join("/usr/local/bin", name)}
	more, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql/*/bin", name))
	for _, c := range append(cands, more...) {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// start runs initdb into a temporary directory and a postgres server on
// it, as nobody when the tests run as root (PostgreSQL refuses to run as
// root). The server has the parent-death signal set: it dies with the
// test binary, or when stop is called, which also removes the directory.
// With a password, connections over TCP authenticate with it
// (scram-sha-256), the admin's included; without, they are trusted.
func start(password string, settings ...string) (url string, stop func(), err error) {
	initdb, err := binary("initdb")
	if err != nil {
		return "", nil, err
	}
	_, err = binary("pg_ctl") // a server installation, not a client alone
	if err != nil {
		return "", nil, err
	}
	postgres, err := binary("postgres")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return "", nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initArgs := []string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"}
	if password != "" {
		pwfile := filepath.Join(dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
			return "", nil, err
		}
		initArgs = append(initArgs, "--auth-host=scram-sha-256", "--pwfile="+pwfile)
	}
	cmd := exec.Command(initdb, initArgs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}
	for _, set := range settings {
		args = append(args, "-c", set)
	}
	srv := exec.Command(postgres, args...)
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	stop = func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		_ = os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	login := "postgres"
	if password != "" {
		login += ":" + password
	}
	base := fmt.Sprintf("postgres://%s@127.0.0.1:%d/", login, port)
	deadline := time.Now().Add(startTimeout)
	for answers(base+"postgres?sslmode=disable") != nil {
		if time.Now().After(deadline) {
			return "", nil, fmt.Errorf("postgres on port %d did not answer in %v", port, startTimeout)
		}
		time.Sleep(50 * time.Millisecond) // polling a starting server: no event to wait on
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base+"postgres?sslmode=disable")
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE test"); err != nil {
		return "", nil, err
	}
	return base + "test?sslmode=disable", stop, nil
}

var (
	twoPhaseOnce sync.Once
	twoPhase     string
	twoPhaseErr  error
)

// TwoPhaseURL returns the URL of a PostgreSQL that allows prepared
// transactions (max_prepared_transactions above 0, which a server's
// default is not): URL's, when it does, else a server of the test
// binary's own started with them (as URL's third choice is). Schema's
// cleanup is URL's: a test on the second server names its schema itself.
func TwoPhaseURL(t testing.TB) string {
	t.Helper()
	url := URL(t)
	twoPhaseOnce.Do(func() {
		var n int
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n)
			conn.Close(ctx)
		}
		if err == nil && n > 0 {
			twoPhase = url
			return
		}
		twoPhase, _, twoPhaseErr = start("", "max_prepared_transactions=8")
	})
	if twoPhaseErr != nil {
		unavailable(t, "no PostgreSQL allowing prepared transactions, and none could be started: %v", twoPhaseErr)
	}
	return twoPhase
}

// passwordServer starts PasswordURL's server, once.
var passwordServer = sync.OnceValues(func() (string, error) {
	var secret [12]byte
	_, _ = rand.Read(secret[:])
	url, _, err := start(hex.EncodeToString(secret[:]), "max_prepared_transactions=8")
	return url, err
})

// PasswordURL returns the URL of a PostgreSQL of the test binary's own on
// which every connection over TCP authenticates with a password
// (scram-sha-256), the admin's in the URL, as a production server's do;
// it allows prepared transactions too. URL's servers trust their
// clients, and on them a role's password means nothing. Schema's cleanup
// is URL's: a test on this server names its schema itself.
func PasswordURL(t testing.TB) string {
	t.Helper()
	url, err := passwordServer()
	if err != nil {
		unavailable(t, "no PostgreSQL with password authentication could be started: %v", err)
	}
	return url
}

// Schema returns a fresh schema name for t, and drops that schema and the
// role the bridge makes for it (rolePrefix + schema) when t ends.
func Schema(t testing.TB, rolePrefix string) string {
	t.Helper()
	url := URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { Drop(t, url, schema, rolePrefix+schema) })
	return schema
}

// Drop removes schema and role from the PostgreSQL at url, and everything
// they hold.
func Drop(t testing.TB, url, schema, role string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("pgtest: dropping %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	var exists bool
	_ = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists)
	stmts := []string{
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role + "'",
		"DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE",
	}
	if exists {
		stmts = append(stmts, "DROP OWNED BY "+pgx.Identifier{role}.Sanitize(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Errorf("pgtest: %s: %v", q, err)
		}
	}
}

// RoleSetting returns the setting name as role has it of its own (ALTER
// ROLE … SET), "name=value", or "" when it has none, on the PostgreSQL at
// url; and whether url's role is a superuser, which alone may set some.
func RoleSetting(t testing.TB, url, role, name string) (setting string, superuser bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT coalesce((SELECT s FROM pg_db_role_setting d, unnest(d.setconfig) s
		WHERE d.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) AND s LIKE $2 || '=%'), ''),
		(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)`, role, name).Scan(&setting, &superuser)
	if err != nil {
		t.Fatalf("pgtest: reading %s of role %s: %v", name, role, err)
	}
	return setting, superuser
}
