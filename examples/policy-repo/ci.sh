#!/usr/bin/env bash
# The policy repository's CI, run locally: the same steps as
# .github/workflows/policy.yml, with OPA and mcpgw from the mcpgw checkout
# this template lives in (go tool opa; mcpgw built fresh) and a throwaway
# signing key made by openssl. mcpgw's `make test` runs it so the template
# stays green. In a repository of your own, set OPA and MCPGW instead:
#   OPA=opa MCPGW=mcpgw ./ci.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mcpgw_repo=$(cd "$here/../.." && pwd)
# go tool -n builds mcpgw's pinned OPA (once) and prints where it is, so opa
# runs here, with paths relative to this repository.
OPA=${OPA:-$(go -C "$mcpgw_repo" tool -n opa)}
opa() { "$OPA" "$@"; }
step() { printf -- '--- %s\n' "$*"; }

step "opa fmt, check --strict"
opa fmt --fail --list policy tests
opa check --strict policy tests

step "opa test with coverage (at least 90%)"
opa test --timeout 10m policy tests --coverage --threshold 90 --format=json > "$work/coverage.json" ||
	{ opa test policy tests -v; exit 1; }
opa test policy tests
printf 'policy coverage: %s%%\n' "$(grep -o '"coverage": *[0-9.]*' "$work/coverage.json" | tail -1 | grep -o '[0-9.]*$')"

step "signed, versioned bundle"
# CI signs with the key from its secret store; here a throwaway pair.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$work/signing.pem" 2>/dev/null
openssl pkey -in "$work/signing.pem" -pubout -out "$work/signing.pub.pem"
revision=${REVISION:-$(git -C "$here" describe --tags --always --dirty 2>/dev/null || echo local)}
opa build -b policy --ignore '*_test.rego' --revision "$revision" \
	--signing-key "$work/signing.pem" --signing-alg RS256 -o "$work/bundle.tar.gz"

step "mcpgw bundle verify"
if [ -z "${MCPGW:-}" ]; then
	go -C "$mcpgw_repo" build -o "$work/mcpgw" ./cmd/mcpgw
	MCPGW=$work/mcpgw
fi
"$MCPGW" bundle verify "$work/bundle.tar.gz" --key "$work/signing.pub.pem"
# The check must be able to fail: another key is refused.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/other.pem" 2>/dev/null
openssl pkey -in "$work/other.pem" -pubout -out "$work/other.pub.pem"
if "$MCPGW" bundle verify "$work/bundle.tar.gz" --key "$work/other.pub.pem" >/dev/null 2>&1; then
	echo "ci.sh: bundle verify accepted a bundle signed by another key" >&2
	exit 1
fi

step "the signed bundle decides as the gateway would"
decision=$("$MCPGW" policy eval --bundle "$work/bundle.tar.gz" --verification-key "$work/signing.pub.pem" \
	--input tests/inputs/reader-lists-hr.json)
echo "$decision"
grep -q '"allow": *true' <<<"$decision" || { echo "ci.sh: reader-lists-hr.json: want allow true" >&2; exit 1; }
grep -q 'get_employee' <<<"$decision" && ! grep -q 'update_employee' <<<"$decision" ||
	{ echo "ci.sh: reader-lists-hr.json: want get_employee visible, update_employee hidden" >&2; exit 1; }

echo "policy-repo: bundle $revision built, signed, verified"
