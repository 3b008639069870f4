#!/usr/bin/env bash
# Rebuilds every .wasm fixture in this directory and in hostile/ (the
# hostile-plugin corpus, host/hostile_test.go) from its .wat source with
# wat2wasm (wabt: `apt install wabt`), in the source's own directory, as its
# `;; Build:` line says. Commit the .wasm files it writes;
# TestForeignWASMMatchesSource (host/foreign_test.go) checks they match.
#
# Usage: testdata/plugins/build.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v wat2wasm >/dev/null 2>&1; then
	echo "build.sh: wat2wasm not found; install wabt (apt install wabt)" >&2
	exit 1
fi

shopt -s nullglob
for wat in *.wat hostile/*.wat; do
	dir="$(dirname "$wat")"
	base="$(basename "$wat" .wat)"
	(cd "$dir" && wat2wasm "$base.wat" -o "$base.wasm")
	echo "$wat -> ${wat%.wat}.wasm"
done
