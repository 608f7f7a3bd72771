# overlay-fleet box bootstrap: the only sh the provider runs on a box. It finds the box agent of
# the box's architecture, installs it when it is missing or not the expected one; the provider
# then runs DIR/SHA256/overlay-fleet-host itself. Run as `sh -c "<this file>" bootstrap ACTION DIR ...`:
#   probe DIR GOARCH:SHA256:MACHINE[,MACHINE...]...   the entry whose machines hold `uname -m`:
#       `have=GOARCH` when its agent is there with that sha256 (its dir touched: in use), else `need=GOARCH`
#   install DIR GOARCH SHA256   (stdin: the agent, gzipped): unpacked, checked, put in place
#       atomically (`have=GOARCH`); versions unused for a day are removed
# DIR and what is in it must be a real directory of this user that others cannot write, or
# nothing is trusted. Needs sh, uname, sha256sum, gzip, mktemp, find. Exit 1 with one line on stderr.
set -eu
die() { printf 'overlay-fleet bootstrap: %s\n' "$*" >&2; exit 1; }
[ "$#" -ge 2 ] || die "usage: probe|install DIR ..."
action=$1 dir=$2
shift 2
case $dir in /*/*) ;; *) die "agent dir '$dir' is not an absolute path below /" ;; esac
sha_of() { sha256sum <"$1" | cut -d' ' -f1; }
# private PATH: a real file or dir (no symlink) of ours that others cannot write.
private() { [ ! -L "$1" ] && [ -n "$(find "$1" -prune -user "$(id -u)" ! -perm -020 ! -perm -002 2>/dev/null)" ]; }
checked() { private "$1" || die "$1 must be a directory or file of uid $(id -u) that others cannot write, not a symlink: refusing the agent there"; }
is_sha() { [ "${#1}" -eq 64 ] && case $1 in *[!0-9a-f]*) false ;; esac; }

case $action in
probe)
    machine=$(uname -m) || die "uname -m failed"
    for entry in "$@"; do
        goarch=${entry%%:*} rest=${entry#*:}
        sha=${rest%%:*} machines=,${rest#*:},
        case $machines in *,"$machine",*) ;; *) continue ;; esac
        is_sha "$sha" || die "'$sha' is not a sha256"
        bin=$dir/$sha/overlay-fleet-host
        if [ -f "$bin" ] && checked "${dir%/*}" && checked "$dir" && checked "$dir/$sha" && checked "$bin" &&
            [ "$(sha_of "$bin")" = "$sha" ]; then touch -- "$dir/$sha" && echo "have=$goarch"; else echo "need=$goarch"; fi
        exit 0
    done
    die "no box agent for this box's architecture '$machine' (uname -m)" ;;
install)
    [ "$#" -eq 2 ] || die "usage: install DIR GOARCH SHA256"
    goarch=$1 sha=$2
    is_sha "$sha" || die "'$sha' is not a sha256"
    umask 022
    mkdir -p -- "$dir/$sha" || die "cannot create $dir/$sha"
    checked "${dir%/*}" && checked "$dir" && checked "$dir/$sha"
    tmp=$(mktemp "$dir/$sha/.install.XXXXXX") || die "cannot create a temp file in $dir/$sha"
    trap 'rm -f -- "$tmp"' EXIT
    gzip -dc >"$tmp" || die "cannot unpack the $goarch agent into $dir (disk full?)"
    got=$(sha_of "$tmp")
    [ "$got" = "$sha" ] || die "the $goarch agent arrived with sha256 $got, not $sha"
    chmod 0755 "$tmp" && mv -f -- "$tmp" "$dir/$sha/overlay-fleet-host" || die "cannot put the agent at $dir/$sha/overlay-fleet-host"
    for old in "$dir"/*; do
        name=${old##*/}
        if [ "$name" != "$sha" ] && is_sha "$name" && [ -d "$old" ] && [ ! -L "$old" ] && [ -n "$(find "$old" -prune -mmin +1440)" ]; then rm -rf -- "$old" || :; fi
    done
    echo "have=$goarch" ;;
*) die "unknown action '$action' (probe, install)" ;;
esac
