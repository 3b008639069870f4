#!/usr/bin/env bash
# Rebuilds every .wasm fixture in this directory from its .wat source with
# wat2wasm (wabt: `apt install wabt`). Commit the .wasm files it writes;
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
for wat in *.wat; do
	wasm="${wat%.wat}.wasm"
	wat2wasm "$wat" -o "$wasm"
	echo "$wat -> $wasm"
done
