# of-fstab set <fstabFile> <id> <merged> <options> [<id> <merged> <options>]...
# of-fstab remove <fstabFile> <id> [<id>]...
#
# Keeps one managed line per instance in <fstabFile>:
#   overlay <merged> overlay <options>,x-overlay-fleet=<id> 0 0
# The x-overlay-fleet=<id> option is the marker (util-linux and systemd ignore x- options).
# `set` replaces each instance's line in place or appends it (in the order given); `remove`
# deletes them; duplicate lines of one id collapse into one. One call is one edit, however many
# instances it names (a box's apply writes all of its lines at once). Every edit happens under a
# lock (flock on <fstab>.overlay-fleet.lock; flock is required), is built in a temp file in the
# same dir, checked with findmnt --verify, synced and renamed over the fstab (atomic) with the
# fstab's mode and owner; the previous content is kept in <fstab>.overlay-fleet.bak. A failed
# write or sync fails the edit and leaves the fstab as it was. Temp files of killed edits are
# removed by the next edit. Foreign lines are copied byte for byte, and never printed (a conflict
# names the line number only: options may hold credentials). Nothing is written at all when the
# content would not change.

usage_text="usage: of-fstab set <fstabFile> (<id> <merged> <options>)... | of-fstab remove <fstabFile> <id>..."
[ "$#" -ge 3 ] || of_usage "$usage_text"
action=$1
case $action in
    set) [ $((($# - 2) % 3)) -eq 0 ] || of_usage "$usage_text" ;;
    remove) ;;
    *) of_usage "first argument must be set or remove, got '$action'" ;;
esac
of_check_path "fstab file" "$2"; fstab=$OF_PATH
shift 2
# ids: the instances, space-separated; entries (set): `<id> TAB <merged> TAB <line>` per line.
ids=
entries=
mergeds=
while [ "$#" -gt 0 ]; do
    of_check_id "$1"
    case " $ids " in
        *" $1 "*) of_usage "instance id '$1' is given twice" ;;
    esac
    ids="$ids${ids:+ }$1"
    if [ "$action" = set ]; then
        of_check_path "merged dir" "$2"; merged=$OF_PATH
        case " $mergeds " in
            *" $merged "*) of_usage "merged dir '$merged' is given twice" ;;
        esac
        mergeds="$mergeds${mergeds:+ }$merged"
        of_check_options "fstab options" "$3" fstab
        entries="$entries$1	$merged	overlay $merged overlay $3,x-overlay-fleet=$1 0 0
"
        shift 3
    else
        shift
    fi
done
# The legacy per-instance delete of a planned instance (of_applied_keeps) changes nothing.
if [ "$action" = remove ] && [ "${ids#* }" = "$ids" ]; then
    ! of_applied_keeps id "$ids" || exit 0
fi

# Edit the file a symlinked fstab points to: rename(2) over the link would replace the link.
if [ -L "$fstab" ]; then
    target=$(readlink -f -- "$fstab") || of_die "cannot resolve the fstab symlink '$fstab'"
    [ -n "$target" ] || of_die "cannot resolve the fstab symlink '$fstab'"
    fstab=$target
fi
if [ -e "$fstab" ] && [ ! -f "$fstab" ]; then
    of_die "fstab '$fstab' is not a regular file"
fi
dir=${fstab%/*}
[ -n "$dir" ] || dir=/
[ -d "$dir" ] || of_die "directory of fstab '$fstab' does not exist"

if [ "$action" = remove ] && [ ! -e "$fstab" ]; then
    printf 'ok fstab remove %s: unchanged (no %s)\n' "$ids" "$fstab"
    exit 0
fi

tmp=
fs_cleanup() {
    [ -z "$tmp" ] || rm -f -- "$tmp" "$tmp.bak" "$tmp.err" "$tmp.meta"
}
trap 'fs_cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

of_lock "$fstab.overlay-fleet.lock"

# Temp files of edits that were killed (SIGKILL runs no trap) are stale: every edit creates its
# temp files under this lock, so none of them can belong to a running edit.
stale=0
for f in "$dir/.${fstab##*/}.overlay-fleet."?????? "$dir/.${fstab##*/}.overlay-fleet."??????.*; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    rm -f -- "$f" || of_die "cannot remove the stale temp file '$f'"
    stale=$((stale + 1))
done
case $stale in
    0) ;;
    1) of_warn "removed 1 stale temp file of interrupted fstab edits beside '$fstab'" ;;
    *) of_warn "removed $stale stale temp files of interrupted fstab edits beside '$fstab'" ;;
esac

tmp=$(mktemp "$dir/.${fstab##*/}.overlay-fleet.XXXXXX") || of_die "cannot create a temp file in '$dir'"

# The new content goes to the temp file: the fstab line by line, each of our lines in place of
# the managed line of its id (set; remove drops it), appended in order when there is none. awk
# reads the file in blocks (dash's `read` takes a byte per system call). awk cannot tell whether
# the last line ends in a newline, so the last byte is looked at first; a last line without one is
# kept without one, unless our lines follow it. The meta file gets: changed (0|1), the line
# number of a foreign entry for one of our merged dirs (0: none) and that dir, the number of
# complete lines read; then `<line number> <merged>` of each of our lines in the new content.
nonl=0
if [ -s "$fstab" ] && [ -n "$(tail -c 1 -- "$fstab")" ]; then nonl=1; fi
src=$fstab
[ -e "$fstab" ] || src=/dev/null
OF_R_ACTION=$action OF_R_IDS=$ids OF_R_ENTRIES=$entries OF_R_NONL=$nonl OF_R_META=$tmp.meta awk '
    BEGIN {
        act = ENVIRON["OF_R_ACTION"]; nonl = ENVIRON["OF_R_NONL"] + 0; meta = ENVIRON["OF_R_META"]
        n = split(ENVIRON["OF_R_IDS"], idl, " ")
        for (k = 1; k <= n; k++) ours[idl[k]] = 1
        m = split(ENVIRON["OF_R_ENTRIES"], el, "\n"); ne = 0
        for (k = 1; k <= m; k++) {
            if (el[k] == "") continue
            split(el[k], f, "\t"); ne++
            order[ne] = f[1]; want[f[1]] = f[3]; target[f[1]] = f[2]; wanted[f[2]] = 1
        }
    }
    {
        line[NR] = $0; entry[NR] = NF > 0 && $1 !~ /^#/; f2[NR] = $2; f4[NR] = $4
        # the id of a managed entry (its x-overlay-fleet= option), else ""
        id_of[NR] = ""
        if (entry[NR] && index($0, "x-overlay-fleet=")) {
            c = split($4, o, ",")
            for (k = 1; k <= c; k++) if (substr(o[k], 1, 16) == "x-overlay-fleet=") id_of[NR] = substr(o[k], 17)
        }
    }
    END {
        changed = 0; conflict = 0; cdir = ""; outno = 0; last_nl = 1
        for (i = 1; i <= NR; i++) {
            nl = !(i == NR && nonl)
            id = id_of[i]
            if (id != "" && (id in ours)) {
                if (act == "set" && !(id in emitted)) {
                    printf "%s\n", want[id]; at[id] = ++outno; emitted[id] = 1
                    if (line[i] != want[id] || !nl) changed = 1
                } else changed = 1
                last_nl = 1
                continue
            }
            printf "%s%s", line[i], (nl ? "\n" : ""); outno++; last_nl = nl
            if (act == "set" && entry[i] && !conflict) {
                t = f2[i]
                gsub(/\/\/+/, "/", t)
                while (length(t) > 1 && substr(t, length(t)) == "/") t = substr(t, 1, length(t) - 1)
                if (t in wanted) { conflict = i; cdir = t }
            }
        }
        for (k = 1; k <= ne; k++) {
            id = order[k]
            if (id in emitted) continue
            if (!last_nl) { printf "\n"; last_nl = 1 }
            printf "%s\n", want[id]; at[id] = ++outno; changed = 1
        }
        print changed, conflict, NR - nonl, cdir > meta
        for (k = 1; k <= ne; k++) print at[order[k]], target[order[k]] > meta
    }' "$src" >"$tmp" ||
    of_die "cannot write the temp file '$tmp' (is the filesystem full?); '$fstab' is unchanged"
{
    IFS=' ' read -r changed conflict inno cdir || of_die "cannot read '$tmp.meta'"
    # our lines' numbers and targets: `<no> <merged>` per line
    ourlines=
    while IFS=' ' read -r no target; do
        ourlines="$ourlines$no $target
"
    done
} <"$tmp.meta"
rm -f -- "$tmp.meta"
[ "$conflict" != 0 ] || conflict=
# A short read, or a file changed meanwhile: count the lines another way.
if [ -e "$fstab" ]; then
    want=$(wc -l <"$fstab") || of_die "cannot read '$fstab'"
    [ "$inno" -eq "$((want))" ] ||
        of_die "read only $inno of the $((want)) lines of '$fstab' (read error, or changed meanwhile?); '$fstab' is unchanged"
fi

if [ -n "$conflict" ]; then
    cid=
    while IFS='	' read -r e_id e_merged e_line; do
        [ "$e_merged" != "$cdir" ] || cid=$e_id
    done <<EOF
$entries
EOF
    of_die "fstab '$fstab' already has another entry for '$cdir' (line $conflict); refusing to add the line of $cid"
fi

if [ "$changed" = 0 ]; then
    printf 'ok fstab %s %s: unchanged\n' "$action" "$ids"
    exit 0
fi

# Validate our line with findmnt --verify. It also reports conditions of foreign lines and
# harmless ones of ours (a target dir that does not exist yet: systemd and mount create it on
# use... util-linux 2.38 calls this "[E] unreachable on boot required target"), so only parse
# errors on our line and other errors reported for our target block are fatal.
if [ "$action" = set ] && of_have findmnt; then
    # One run; the report (stdout) and the parse errors and summary (stderr, via a file) are read
    # apart: mixed in one pipe, stderr lands inside a report line as soon as stdout is flushed in
    # 4 KiB pieces.
    report=$(findmnt --verify --verbose --tab-file "$tmp" 2>"$tmp.err") || :
    perrors=
    while IFS= read -r r || [ -n "$r" ]; do
        perrors="$perrors$r
"
    done <"$tmp.err"
    rm -f -- "$tmp.err"
    case $perrors in
        # a findmnt without --verify (util-linux before 2.29) refuses the option: nothing to check with
        *"findmnt --help"*) ;;
        *)
            bad=
            inblock=0
            while IFS= read -r r; do
                case $r in
                    *"parse error at line "*)
                        no=${r#*parse error at line }
                        no=${no%%[!0-9]*}
                        case $ourlines in
                            "$no "* | *"
$no "*)
                                bad="$bad${bad:+; }$r"
                                continue
                                ;;
                        esac
                        ;;
                esac
                case $r in
                    '' | ' '* | '	'*) ;;
                    *)
                        inblock=0
                        case $ourlines in
                            *" $r
"*) inblock=1 ;;
                        esac
                        continue
                        ;;
                esac
                [ "$inblock" = 1 ] || continue
                case $r in
                    *'[E]'*'target'*'No such file or directory'* | *'[E]'*'target does not exist'*) ;;
                    *'[E] wrong order'*) of_warn "findmnt --verify on the new fstab: ${r#"${r%%[![:blank:]]*}"}" ;;
                    *'[E]'*) bad="$bad${bad:+; }${r#"${r%%[![:blank:]]*}"}" ;;
                esac
            done <<EOF
$perrors
$report
EOF
            if [ -n "$bad" ]; then
                of_die "refusing to write fstab '$fstab': findmnt --verify reports for the lines of $ids: $bad"
            fi
            ;;
    esac
fi

if [ -e "$fstab" ]; then
    mode=$(stat -c '%a %u:%g' -- "$fstab") || of_die "cannot read the mode and owner of '$fstab'"
    owner=${mode#* }
    mode=${mode%% *}
else
    mode=644
    owner=0:0
fi
chmod "$mode" "$tmp" || of_die "cannot set mode $mode on '$tmp'"
chown "$owner" "$tmp" 2>/dev/null || [ "$owner" = "$(id -u):$(id -g)" ] ||
    of_die "cannot set owner $owner on '$tmp'"
of_sync "$tmp" "'$fstab' is unchanged"

if [ -e "$fstab" ]; then
    bak=$fstab.overlay-fleet.bak
    cp -p -- "$fstab" "$tmp.bak" && mv -f -- "$tmp.bak" "$bak" || {
        rm -f -- "$tmp.bak"
        of_die "cannot write the backup '$bak'; '$fstab' is unchanged"
    }
fi
mv -f -- "$tmp" "$fstab" || of_die "cannot rename '$tmp' over '$fstab'"
tmp=
of_sync "$dir" "the new '$fstab' is in place but may not survive a crash"

printf 'ok fstab %s %s: written to %s\n' "$action" "$ids" "$fstab"
