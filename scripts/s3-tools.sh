#!/usr/bin/env bash
# Prints the path of s3s-fs (an S3-compatible server over a directory that checks request
# signatures) as an S3S_FS=... line, installing it first when missing: `cargo install
# s3s-fs@0.14.1` (about 2.5 minutes) into ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools/s3s
# (override: KVSTORE_TOOLS_DIR). The backup end-to-end test runs it as the object store.
#
# Usage: eval "$(scripts/s3-tools.sh)"; "$S3S_FS" --help
set -euo pipefail

TOOLS="${KVSTORE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools}"
DIR="$TOOLS/s3s"
BIN="$DIR/bin/s3s-fs"

mkdir -p "$TOOLS"
exec 9>"$TOOLS/.s3s.lock"
if command -v flock >/dev/null; then flock 9; fi # two runs at once must not both install
if ! [ -x "$BIN" ]; then
  echo "installing s3s-fs 0.14.1 into $DIR (cargo install)" >&2
  cargo install s3s-fs@0.14.1 --features binary --locked --root "$DIR" >&2
fi
exec 9>&-
"$BIN" --help >/dev/null 2>&1 || { echo "$BIN does not run" >&2; exit 1; }
echo "S3S_FS=$BIN"
