#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that stream/infer/onnxrt loads (through
# github.com/yalue/onnxruntime_go v1.27.0, whose C API headers are ORT_API_VERSION 24, i.e.
# ONNX Runtime 1.24.1). The library ships inside the npm package onnxruntime-node; its install
# script fetches GPU extras from a host that cannot be reached, so it is skipped.
#
#   bash .ci/install-onnxruntime.sh            # installs to $HOME/.cache/eddy/onnxruntime
#   ONNXRUNTIME_DIR=/opt/ort bash .ci/install-onnxruntime.sh
#
# Tests find the library from ONNXRUNTIME_LIB, or at $ONNXRUNTIME_DIR/libonnxruntime.so.1
# (default above).
set -euo pipefail

version=1.24.1
dir=${ONNXRUNTIME_DIR:-$HOME/.cache/eddy/onnxruntime}
lib="$dir/libonnxruntime.so.1"

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) arch=x64 ;;
  Linux/aarch64) arch=arm64 ;;
  *) echo "install-onnxruntime: no onnxruntime-node build for $(uname -s)/$(uname -m)" >&2; exit 1 ;;
esac

if [ -f "$lib" ] && [ -f "$dir/VERSION" ] && [ "$(cat "$dir/VERSION")" = "$version" ]; then
  echo "onnxruntime $version already at $lib"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --ignore-scripts --no-audit --no-fund "onnxruntime-node@$version" >/dev/null)
src="$tmp/node_modules/onnxruntime-node/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
if [ ! -f "$src" ]; then
  # Some releases name the file with the full version.
  src=$(ls "$tmp/node_modules/onnxruntime-node/bin/napi-v6/linux/$arch/"libonnxruntime.so* | head -1)
fi
mkdir -p "$dir"
cp "$src" "$lib"
echo "$version" >"$dir/VERSION"
echo "onnxruntime $version installed at $lib"
