#!/usr/bin/env bash
# Builds SeaweedFS's `weed` binary (Apache-2.0), the S3-compatible server the object-store
# checkpoint tests run against (persistence/objstore_*_test.go). The binary goes to a cache
# outside the repository and is built only when it is missing or of another version.
#
# SeaweedFS's go.mod has replace directives, so `go install .../weed@VERSION` refuses; a
# throw-away wrapper module that requires seaweedfs (and copies its replace directive) and
# builds the weed package works. The first build takes minutes; later ones hit the Go
# build cache.
set -euo pipefail

WEED_MODULE=github.com/seaweedfs/seaweedfs
WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
bin_dir=${EDDY_CACHE_DIR:-${HOME}/.cache/eddy}/bin
weed=${bin_dir}/weed
stamp=${weed}.version

if [ -x "$weed" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$WEED_VERSION" ]; then
  echo "seaweedfs: $weed ($WEED_VERSION) already built"
  exit 0
fi

mkdir -p "$bin_dir"
wrapper=$(mktemp -d)
trap 'rm -rf "$wrapper"' EXIT
cd "$wrapper"
cat > go.mod <<MOD
module eddy.local/weedbuild

go 1.26.6

require ${WEED_MODULE} ${WEED_VERSION}

// Copied from seaweedfs's go.mod: replace directives of a dependency do not apply to
// the main module, and tyler-smith/go-bip39 was deleted from GitHub.
replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
MOD

echo "seaweedfs: building ${WEED_MODULE}/weed@${WEED_VERSION} into $weed (minutes the first time)"
start=$(date +%s)
go mod download "${WEED_MODULE}"
# `go get` of the package records the go.sum lines its imports need.
go get "${WEED_MODULE}/weed@${WEED_VERSION}"
go build -trimpath -o "$weed.tmp" "${WEED_MODULE}/weed"
mv "$weed.tmp" "$weed"
echo "$WEED_VERSION" > "$stamp"
echo "seaweedfs: built $weed in $(( $(date +%s) - start ))s"
