// Package config reads the storage-host daemon's configuration: the
// backends it loads, which backend serves each record kind, and who may
// call it. Operators describe the backends in one HCL file, or its JSON
// form (a file whose name ends in .json); swapping a backend is editing
// the file. Reading a file is two steps, both strict, each reporting
// every error it finds at once with the file, line and column of the
// offending attribute or block:
//
//   - Parse (or Load) reads the file's text and nothing else: syntax,
//     schema (unknown blocks and attributes are errors), types and values,
//     names, routes and the other references between blocks, data
//     directories against each other, token scopes, and the secrets the
//     file holds itself (secret, password, a postgres url). It runs no plugin and reads no
//     plugin, secret file, environment variable or directory, so it is
//     cheap, deterministic and safe on any input.
//   - File.Check reads and judges what the text names: values that would
//     only fail later (an unreadable plugin, an ungranted capability, an
//     option the plugin refuses, a Redis block the bridge refuses, a
//     PostgreSQL URL that cannot be parsed, an unset secret) are errors
//     there. Only a checked File is served.
//
// The file's every block and attribute, with defaults and bounds, is
// reference.hcl, itself a valid file (Reference returns it; the daemon
// prints it with "storage-host help config"). A test holds it to the
// schema Parse decodes: an attribute missing from it fails the test.
//
// Check reads every plugin a file names and inspects it (host.Inspect,
// which compiles and runs it) for the capabilities it imports or
// declares and the record kinds it serves, so that a plugin this host
// cannot load, or one needing a capability its backend does not grant
// (redis_scripts, say, of a plugin that runs Lua scripts in a backend
// without scripts = true), is refused here rather than when the daemon
// starts or at its first request. It connects to nothing and creates
// nothing: a Redis backend checks without Redis, a PostgreSQL one without
// PostgreSQL (the host creates its role and schema when it opens the
// backend), and data directories
// (WithDataDir, data_dir) are computed and checked against each other by
// Parse, not made. With Offline, Check reads no secret either, so a file
// checks where its secrets are not (CI). A daemon checking its file again
// at each reload keeps a PluginCache, so that an unchanged plugin is not
// compiled again.
package config
