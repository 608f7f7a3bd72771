#!/bin/sh
# npm run bench [-- SHAPE...]: the deploy benchmark (bench/run.ts) of every shape, then the fold
# benchmark (bench/fold.sh) and the box agent's (bench/agent.sh); with shapes (e.g. `1x16 c1x4`),
# the deploy benchmark of those alone.
set -e
here=$(dirname "$0")
sh "$here/../tools/with-toolchain.sh" node -r ts-node/register/transpile-only "$here/run.ts" "$@"
[ "$#" -gt 0 ] || sh "$here/fold.sh"
[ "$#" -gt 0 ] || sh "$here/agent.sh"
