package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The third way to a PostgreSQL, used where none runs: a server of the
// test binary's own, with the database the tests expect.
func TestStartsAServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs initdb; skipped with -short")
	}
	if _, err := binary("initdb"); err != nil {
		unavailable(t, "%v", err)
	}
	url, stop, err := start("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "test" {
		t.Fatalf("database %q, %v; want test", db, err)
	}
}

// PasswordURL's server takes the password in its URL and refuses a login
// without it.
func TestPasswordServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs initdb; skipped with -short")
	}
	url := PasswordURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "wrong"
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		conn.Close(ctx)
		t.Fatal("a wrong password logged in")
	}
}

func TestSchemaIsDroppedWithItsRole(t *testing.T) {
	url := URL(t)
	var schema string
	t.Run("owner", func(t *testing.T) {
		schema = Schema(t, "storagehost_")
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, q := range []string{"CREATE ROLE storagehost_" + schema, "CREATE SCHEMA " + schema + " AUTHORIZATION storagehost_" + schema, "CREATE TABLE " + schema + ".t (x int)"} {
			if _, err := conn.Exec(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
	})
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left bool
	if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)", schema, "storagehost_"+schema).Scan(&left); err != nil || left {
		t.Fatalf("schema or role left behind (%v)", err)
	}
}
