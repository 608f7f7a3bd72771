#!/bin/sh
# Makes sure the Docker engine binaries of the local lab's box generations exist, and prints
# where they are. Builds happen once and are cached by version under
# ${OVERLAY_FLEET_CACHE:-/var/cache/overlay-fleet}/engines/ (a second run takes milliseconds).
# Progress goes to stderr; stdout is only the answer.
#
#   sh tools/lab-engines.sh                 ensure both generations
#   sh tools/lab-engines.sh env GEN         ensure GEN, then print shell assignments on stdout:
#                                           ENGINE_GEN ENGINE_DOCKERD ENGINE_CLI ENGINE_CONTAINERD
#                                           ENGINE_RUNC ENGINE_RUNTIME (empty: dockerd's default runc)
#
# Generations:
#   docker20  Debian's docker.io 20.10 (API 1.41): /usr/sbin/dockerd, /usr/bin/docker, Debian's
#             runc and containerd. Nothing is built.
#   docker29  dockerd from the Go module github.com/moby/moby/v2 (MOBY_VERSION, API 1.56), runc
#             from github.com/opencontainers/runc (RUNC_VERSION; Debian's runc 1.1.5 is too old
#             for it: "namespace time does not exist"), Debian's containerd, and a docker CLI
#             built from github.com/docker/cli (CLI_VERSIONS, first one the Go proxy serves);
#             failing that, /usr/local/bin/docker if it is >= 25.
# Needs Go (PATH or /usr/local/go/bin/go) and the Go module proxy for a first docker29 build;
# runc needs cgo and libseccomp-dev (tools/system-deps.sh installs it).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

CACHE=${OVERLAY_FLEET_CACHE:-/var/cache/overlay-fleet}
ENG="$CACHE/engines"
MOBY_VERSION=v2.0.0-beta.24      # Docker 29 engine, API 1.56
RUNC_VERSION=v1.5.3
# docker CLI 29.x with github.com/moby/moby/api v1.56 (the engine's API); newest first
# (v29.9.3 needs github.com/moby/swarmkit/v2 v2.1.3, which the Go proxy here refuses)
CLI_VERSIONS="v29.9.3+incompatible v29.9.2+incompatible v29.8.2+incompatible"
FALLBACK_CLI=/usr/local/bin/docker
RUNTIME_NAME=of-runc             # name of the runc v1.5.3 runtime given to the docker29 engine

# Modules are checked against go.sum and sum.golang.org whatever `go env -w` says (as in
# tools/toolchain.sh: an empty GONOSUMDB would not override it, a pattern no module matches does).
export GOSUMDB=sum.golang.org GONOSUMDB=none.invalid GOPRIVATE=none.invalid GOINSECURE=none.invalid

log() { echo "lab-engines: $*" >&2; }
die() { echo "lab-engines: ERROR: $*" >&2; exit 1; }

GO=$(command -v go || echo /usr/local/go/bin/go)

# go_build_module OUT MOD@VER PKG CGO TAGS LDFLAGS: builds package PKG (relative to the module
# root) of module MOD at VER from the Go proxy, in a copy of the module with its own go.mod and
# go.sum (so the dependency versions are the module's own). A module without go.mod (an
# `+incompatible` one such as docker/cli) brings vendor.mod/vendor.sum instead: those are used.
# Returns 1 quietly when the proxy does not serve the module, 2 when the build fails (e.g. the
# proxy refuses one of its dependencies; the errors go to stderr).
go_build_module() {
  local out=$1 mv=$2 pkg=$3 cgo=$4 tags=$5 ldflags=$6 dir json src
  [ -x "$GO" ] || { log "no Go toolchain (tried $GO)"; return 1; }
  dir=$(mktemp -d)
  json=$(cd "$dir" && GOFLAGS=-mod=mod "$GO" mod download -json "$mv" 2>/dev/null) || true
  src=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
  if [ -z "$src" ] || grep -q '"Error"' <<<"$json"; then rm -rf "$dir"; return 1; fi
  cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
  if [ ! -f "$dir/src/go.mod" ] && [ -f "$dir/src/vendor.mod" ]; then
    cp "$dir/src/vendor.mod" "$dir/src/go.mod"
    [ ! -f "$dir/src/vendor.sum" ] || cp "$dir/src/vendor.sum" "$dir/src/go.sum"
  fi
  rm -rf "$dir/src/vendor"   # module zips hold only vendor/modules.txt, not the sources
  log "building $pkg of $mv (cgo=$cgo${tags:+, tags $tags}); this takes minutes on a bare machine"
  mkdir -p "$(dirname "$out")"; rm -f "$out.tmp"
  (cd "$dir/src" && CGO_ENABLED=$cgo GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    "$GO" build -trimpath ${tags:+-tags "$tags"} -ldflags "-s -w $ldflags" -o "$out.tmp" "./$pkg" 2>&1) |
    grep -v '^go: downloading' >&2 || true
  rm -rf "$dir"
  [ -x "$out.tmp" ] || { log "go build of $pkg ($mv) failed (see above)"; return 2; }
  mv "$out.tmp" "$out"
}

# major version of a docker CLI binary (0 when it does not run)
cli_major() {
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p') || true
  echo "${v:-0}"
}

ensure_docker20() {
  local f
  for f in /usr/sbin/dockerd /usr/bin/docker /usr/bin/containerd /usr/bin/containerd-shim-runc-v2; do
    [ -x "$f" ] || die "$f missing (run: sh tools/system-deps.sh)"
  done
  command -v runc >/dev/null || die "runc missing (run: sh tools/system-deps.sh)"
  ENGINE_DOCKERD=/usr/sbin/dockerd
  ENGINE_CLI=/usr/bin/docker
  ENGINE_CONTAINERD=/usr/bin/containerd
  ENGINE_RUNC=$(command -v runc)
  ENGINE_RUNTIME=""
}

ensure_docker29() {
  local dockerd="$ENG/moby-$MOBY_VERSION/dockerd" runc="$ENG/runc-$RUNC_VERSION/runc" v cli=""
  [ -x /usr/bin/containerd ] && [ -x /usr/bin/containerd-shim-runc-v2 ] ||
    die "Debian's containerd missing (run: sh tools/system-deps.sh)"
  if [ ! -x "$dockerd" ]; then
    go_build_module "$dockerd" "github.com/moby/moby/v2@$MOBY_VERSION" cmd/dockerd 0 "" \
      "-X github.com/moby/moby/v2/dockerversion.Version=$MOBY_VERSION" ||
      die "cannot build dockerd from github.com/moby/moby/v2@$MOBY_VERSION (needs Go and the Go module proxy)"
  fi
  if [ ! -x "$runc" ]; then
    [ -f /usr/include/seccomp.h ] || die "libseccomp-dev missing (run: sh tools/system-deps.sh)"
    go_build_module "$runc" "github.com/opencontainers/runc@$RUNC_VERSION" . 1 seccomp \
      "-X main.version=${RUNC_VERSION#v}" ||
      die "cannot build runc from github.com/opencontainers/runc@$RUNC_VERSION (needs Go, the Go module proxy, cgo)"
  fi
  for v in $CLI_VERSIONS; do
    local c="$ENG/docker-cli-${v%+incompatible}/docker" refused="$ENG/docker-cli-${v%+incompatible}.refused"
    if [ -x "$c" ]; then cli=$c; break; fi
    # a refused module or failed build is remembered for a day
    if [ -n "$(find "$refused" -mmin -1440 2>/dev/null)" ]; then continue; fi
    if go_build_module "$c" "github.com/docker/cli@$v" cmd/docker 0 "" \
      "-X github.com/docker/cli/cli/version.Version=$(sed 's/^v//; s/+incompatible$//' <<<"$v")"; then
      cli=$c; break
    fi
    log "no docker CLI from github.com/docker/cli@$v (the Go proxy refuses it or one of its dependencies)"
    touch "$refused"; rmdir "$(dirname "$c")" 2>/dev/null || true
  done
  if [ -z "$cli" ]; then
    [ -x "$FALLBACK_CLI" ] && [ "$(cli_major "$FALLBACK_CLI")" -ge 25 ] ||
      die "no docker CLI for the docker29 engine: the Go proxy serves none of $CLI_VERSIONS of github.com/docker/cli and $FALLBACK_CLI is missing or older than 25"
    log "using $FALLBACK_CLI ($("$FALLBACK_CLI" --version)) as the docker29 CLI"
    cli=$FALLBACK_CLI
  fi
  ENGINE_DOCKERD=$dockerd
  ENGINE_CLI=$cli
  ENGINE_CONTAINERD=/usr/bin/containerd
  ENGINE_RUNC=$runc
  ENGINE_RUNTIME=$RUNTIME_NAME
}

ensure() {
  case "$1" in
    docker20) ensure_docker20 ;;
    docker29) ensure_docker29 ;;
    *) die "unknown engine generation '$1' (want docker20 or docker29)" ;;
  esac
  ENGINE_GEN=$1
}

mkdir -p "$ENG" || die "cannot create $ENG (set OVERLAY_FLEET_CACHE)"
exec 9>"$ENG/.lock"               # two parallel first runs must not build twice
flock -n 9 || { log "waiting for another lab-engines run"; flock 9; }

case "${1:-}" in
  "" | ensure) ensure docker20; ensure docker29 ;;
  env)
    [ $# -eq 2 ] || die "usage: lab-engines.sh env docker20|docker29"
    ensure "$2"
    for k in ENGINE_GEN ENGINE_DOCKERD ENGINE_CLI ENGINE_CONTAINERD ENGINE_RUNC ENGINE_RUNTIME; do
      printf "%s='%s'\n" "$k" "${!k}"
    done ;;
  *) die "usage: lab-engines.sh [ensure] | env docker20|docker29" ;;
esac
