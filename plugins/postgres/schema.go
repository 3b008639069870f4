package main

import "github.com/storage-host/storage-host/abi"

// migrations is the schema, one version per released change: never edit
// a released one, add the next. The host applies them in the backend's
// own schema, under an advisory lock, in one transaction.
var migrations = abi.Migrations{
	{Version: 1, SQL: `
CREATE SEQUENCE state_versions;

CREATE TABLE metrics (
	agent_id   text COLLATE "C" NOT NULL,
	name       text COLLATE "C" NOT NULL,
	ts         bigint NOT NULL,
	value      double precision NOT NULL,
	labels     bytea NOT NULL,
	label_set  jsonb NOT NULL,
	expires_at bigint NOT NULL,
	PRIMARY KEY (agent_id, name, ts)
);
CREATE INDEX metrics_by_name ON metrics (name, agent_id, ts);
CREATE INDEX metrics_by_label ON metrics USING gin (label_set jsonb_path_ops);
CREATE INDEX metrics_by_expiry ON metrics (expires_at) WHERE expires_at <> 0;

CREATE TABLE alerts (
	id         text COLLATE "C" PRIMARY KEY,
	agent_id   text COLLATE "C" NOT NULL,
	severity   smallint NOT NULL,
	status     smallint NOT NULL,
	message    bytea NOT NULL,
	labels     bytea NOT NULL,
	label_set  jsonb NOT NULL,
	created_at bigint NOT NULL,
	updated_at bigint NOT NULL,
	expires_at bigint NOT NULL
);
CREATE INDEX alerts_by_agent ON alerts (agent_id, id);
CREATE INDEX alerts_by_label ON alerts USING gin (label_set jsonb_path_ops);
CREATE INDEX alerts_by_expiry ON alerts (expires_at) WHERE expires_at <> 0;

CREATE TABLE agent_states (
	agent_id   text COLLATE "C" PRIMARY KEY,
	state      bytea NOT NULL,
	version    bigint NOT NULL,
	updated_at bigint NOT NULL,
	expires_at bigint NOT NULL
);
CREATE INDEX agent_states_by_expiry ON agent_states (expires_at) WHERE expires_at <> 0;
`},
	// A query of alerts by creation time reads the range from an index
	// rather than every alert in key order (planned with its values,
	// query.go: a wide range still walks the primary key).
	{Version: 2, SQL: `
CREATE INDEX alerts_by_created ON alerts (created_at);
`},
}
