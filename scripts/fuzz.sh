#!/usr/bin/env bash
# Runs each Fuzz* target in the module for the given time (default 30s).
# go test -fuzz takes one package and one target at a time.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
ran=0
for pkg in $(go list ./...); do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "== fuzz $pkg $t ($fuzztime)"
		go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg"
		ran=$((ran + 1))
	done
done
echo "fuzz: $ran targets ran for $fuzztime each"
[ "$ran" -gt 0 ]
