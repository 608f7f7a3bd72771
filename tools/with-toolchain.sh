#!/bin/sh
# Runs CMD ARGS... with the project toolchain (see tools/toolchain.sh): Node >= 22, the Pulumi
# CLI and plugins on PATH, ./node_modules/.bin first, and no plugin downloads.
#   sh tools/with-toolchain.sh vitest run
#   sh tools/with-toolchain.sh pulumi preview
set -eu
[ $# -gt 0 ] || { echo "usage: sh tools/with-toolchain.sh CMD [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
env_lines=$(bash "$here/toolchain.sh" --print-env) || exit $?
eval "$env_lines"
PATH="$(cd "$here/.." && pwd)/node_modules/.bin:$PATH"
export PATH
exec "$@"
