# overlay-fleet box bootstrap: the only sh the provider runs on a box. It finds the box agent of
# the box's architecture, installs it when it is missing or not the expected one, and names it;
# the provider then runs the agent itself. Run as `sh -c "<this file>" bootstrap ACTION DIR ...`:
#
#   probe DIR GOARCH:SHA256:MACHINE[,MACHINE...]...
#       Picks the entry whose machines hold `uname -m`. Prints `agent=DIR/SHA256/overlay-fleet-host`
#       when that file is there with that sha256, else `need=GOARCH`.
#   install DIR GOARCH SHA256   (stdin: the agent, gzipped)
#       Unpacks it, checks its sha256, puts it at DIR/SHA256/overlay-fleet-host (atomically),
#       removes the agents of other versions and prints `agent=...`.
#
# Needs sh, uname, sha256sum, gzip, mktemp (coreutils, gzip). Exit 1 with one line on stderr.
set -eu
die() { printf 'overlay-fleet bootstrap: %s\n' "$*" >&2; exit 1; }
[ "$#" -ge 2 ] || die "usage: probe|install DIR ..."
action=$1 dir=$2
shift 2
case $dir in /*) ;; *) die "agent dir '$dir' is not an absolute path" ;; esac
sha_of() { sha256sum <"$1" | cut -d' ' -f1; }

case $action in
probe)
    machine=$(uname -m) || die "uname -m failed"
    for entry in "$@"; do
        goarch=${entry%%:*} rest=${entry#*:}
        sha=${rest%%:*} machines=,${rest#*:},
        case $machines in *,"$machine",*) ;; *) continue ;; esac
        bin=$dir/$sha/overlay-fleet-host
        if [ -f "$bin" ] && [ "$(sha_of "$bin")" = "$sha" ]; then echo "agent=$bin"; else echo "need=$goarch"; fi
        exit 0
    done
    die "no box agent for this box's architecture '$machine' (uname -m)" ;;
install)
    [ "$#" -eq 2 ] || die "usage: install DIR GOARCH SHA256"
    goarch=$1 sha=$2
    case $sha in '' | *[!0-9a-f]*) die "'$sha' is not a sha256" ;; esac
    umask 022
    mkdir -p -- "$dir" || die "cannot create $dir"
    tmp=$(mktemp "$dir/.install.XXXXXX") || die "cannot create a temp file in $dir"
    trap 'rm -f -- "$tmp"' EXIT
    gzip -dc >"$tmp" || die "cannot unpack the $goarch agent into $dir (disk full?)"
    got=$(sha_of "$tmp")
    [ "$got" = "$sha" ] || die "the $goarch agent arrived with sha256 $got, not $sha"
    chmod 0755 "$tmp" && mkdir -p -- "$dir/$sha" && mv -f -- "$tmp" "$dir/$sha/overlay-fleet-host" ||
        die "cannot put the agent at $dir/$sha/overlay-fleet-host"
    for old in "$dir"/*/; do
        [ "$old" = "$dir/$sha/" ] || [ ! -d "$old" ] || rm -rf -- "$old" || :
    done
    echo "agent=$dir/$sha/overlay-fleet-host" ;;
*) die "unknown action '$action' (probe, install)" ;;
esac
