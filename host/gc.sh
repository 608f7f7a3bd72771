# of-gc <lower> <keepGeneration> <fstabFile>
#
# Retires the generations of the lower cache older than <keepGeneration>, and keeps the configured
# <lower> path naming the current cache:
#   - <lower> itself is generation 1 (the user's directory; every later generation holds all of
#     its data). When keep > 1 and nothing uses it any more, it is replaced, in one rename, by a
#     symlink `<lower> -> <name>.g<keep>` (`linked <lower> -> <name>.g<keep>`), then its old
#     content is removed (`removed <lower>`). Once <lower> is that symlink, gc points it at
#     generation <keep> (a symlink is never a layer: mounts and fstab lines name `<lower>.g<k>`).
#   - `<lower>.g<k>` for k < keep are removed.
# Conservative: a generation is removed only when no mount in this mount namespace uses it (an
# overlay layer at or below it, or a mount point at or below it) and no line of <fstabFile> names
# it (as a layer or as a mount source or point). Otherwise it prints `kept <path>: in use by
# <what>` and goes on; the exit status stays 0.
# Also removes what interrupted folds left for generations < keep (`<lower>.g<k>.partial` and
# `.work`, after unmounting the read-only views a killed fold may have left in the work dir).
# Refuses (exit 1) when generation <keepGeneration> does not exist, or while a fold runs.

set -eu
fold_init

[ "$#" -eq 3 ] || of_usage "usage: of-gc <lower> <keepGeneration> <fstabFile>"
fold_check_path "lower dir" "$1"
L=$FOLD_PATH
fold_check_generation "keep generation" "$2"
g_keep=$2
g_fstab=$3
case $g_fstab in
    /*) ;;
    *) of_usage "fstab file must be an absolute path, got '$g_fstab'" ;;
esac
[ -f "$g_fstab" ] || of_die "fstab file '$g_fstab' does not exist"
[ -r "$g_fstab" ] || of_die "fstab file '$g_fstab' is not readable"

fold_gen_path "$L" "$g_keep"
g_keep_path=$FOLD_GP
[ -d "$g_keep_path" ] ||
    of_die "generation $g_keep ('$g_keep_path') does not exist; refusing to remove the generations before it"

fold_lock "$L" gc

# g_fstab_unescape FIELD: fstab's octal escapes (\040 ...) decoded, in G_FIELD.
g_fstab_unescape() {
    case $1 in
        *\\*)
            g_ue_in=$1
            g_ue_out=
            while :; do
                case $g_ue_in in
                    *\\*)
                        g_ue_out="$g_ue_out${g_ue_in%%\\*}\\0"
                        g_ue_in=${g_ue_in#*\\}
                        ;;
                    *)
                        g_ue_out=$g_ue_out$g_ue_in
                        break
                        ;;
                esac
            done
            G_FIELD=$(printf '%bx' "$g_ue_out")
            G_FIELD=${G_FIELD%x}
            ;;
        *) G_FIELD=$1 ;;
    esac
}

# g_fstab_users PATH: fstab lines that name PATH (or something below it), in G_USERS.
g_fstab_users() {
    G_USERS=
    g_ln=0
    while IFS= read -r g_line || [ -n "$g_line" ]; do
        g_ln=$((g_ln + 1))
        of_fstab_fields "$g_line"
        [ -n "$OF_F2" ] || continue
        case $OF_F1 in '#'*) continue ;; esac
        g_hit=
        g_fstab_unescape "$OF_F1"
        fold_refs_path "$G_FIELD" "$g_path" && g_hit="source"
        g_fstab_unescape "$OF_F2"
        [ -n "$g_hit" ] || ! fold_refs_path "$G_FIELD" "$g_path" || g_hit="mount point"
        if [ -z "$g_hit" ] && [ -n "$OF_F4" ]; then
            g_rest=$OF_F4,
            while [ -n "$g_rest" ]; do
                g_o=${g_rest%%,*}
                g_rest=${g_rest#*,}
                case $g_o in
                    lowerdir=* | lowerdir+=* | upperdir=* | workdir=* | datadir+=*) ;;
                    *) continue ;;
                esac
                g_v=${g_o#*=}:
                while [ -n "$g_v" ]; do
                    g_fstab_unescape "${g_v%%:*}"
                    g_v=${g_v#*:}
                    if fold_refs_path "$G_FIELD" "$g_path"; then
                        g_hit=${g_o%%=*}
                        break 2
                    fi
                done
            done
        fi
        if [ -n "$g_hit" ]; then
            G_USERS="$G_USERS${G_USERS:+, }$g_fstab line $g_ln ($g_hit)"
        fi
    done <"$g_fstab"
    [ -n "$G_USERS" ]
}

g_removed=0
g_kept=0

# g_remove PATH [ASIDE]: removes the generation PATH unless something uses it. With ASIDE, PATH
# (generation 1, the configured lower) is renamed to ASIDE and replaced by a symlink to
# generation keep before its content is removed.
g_remove() {
    g_path=$1
    g_what=
    if fold_mount_users "$g_path"; then
        while IFS= read -r g_u; do
            g_what="$g_what${g_what:+; }$g_u"
        done <<EOF
$FOLD_USERS
EOF
    fi
    if g_fstab_users "$g_path"; then
        g_what="$g_what${g_what:+; }$G_USERS"
    fi
    if [ -n "$g_what" ]; then
        printf 'kept %s: in use by %s\n' "$g_path" "$g_what"
        g_kept=$((g_kept + 1))
        return 0
    fi
    if [ "$#" -eq 2 ]; then
        rm -rf --one-file-system -- "$2" || of_die "cannot remove '$2'"
        mv -T -- "$g_path" "$2" || of_die "cannot move '$g_path' aside to '$2' (a mount point?)"
        g_link_current
        g_path=$2
    fi
    rm -rf --one-file-system -- "$g_path" || of_die "cannot remove '$g_path'"
    [ ! -e "$g_path" ] || of_die "'$g_path' is still there after removal (another filesystem mounted below it?)"
    printf 'removed %s\n' "$1"
    g_removed=$((g_removed + 1))
}

# Leftovers of interrupted folds below keep: staging and work dirs (unmount views first).
g_views=
g_views_cb() {
    case $FOLD_MI_MP in
        "$L$OF_GENERATION_SUFFIX"*.work/*) g_views="$FOLD_MI_MP$FOLD_NL$g_views" ;;
    esac
    return 0
}
for g_d in "$L$OF_GENERATION_SUFFIX"*.partial "$L$OF_GENERATION_SUFFIX"*.work; do
    [ -e "$g_d" ] || continue
    g_k=${g_d#"$L$OF_GENERATION_SUFFIX"}
    g_k=${g_k%.partial}
    g_k=${g_k%.work}
    fold_is_generation "$g_k" && [ "$g_k" -lt "$g_keep" ] || continue
    case $g_d in
        *.work)
            g_views=
            fold_mi_each g_views_cb
            while IFS= read -r g_mp; do
                case $g_mp in "$g_d"/*) ;; *) continue ;; esac
                umount -- "$g_mp" 2>/dev/null || umount -l -- "$g_mp" ||
                    of_die "cannot unmount '$g_mp' left by an interrupted fold"
            done <<EOF
$g_views
EOF
            ;;
    esac
    rm -rf --one-file-system -- "$g_d" || of_die "cannot remove '$g_d'"
    printf 'removed %s\n' "$g_d"
done

# Generations below keep, oldest first.
g_list=
for g_d in "$L$OF_GENERATION_SUFFIX"*; do
    g_k=${g_d#"$L$OF_GENERATION_SUFFIX"}
    fold_is_generation "$g_k" && [ -d "$g_d" ] && [ "$g_k" -lt "$g_keep" ] || continue
    g_list="$g_list$g_k$FOLD_NL"
done
# g_link_current: <lower> (a symlink) names generation keep.
g_link_current() {
    g_want=${L##*/}$OF_GENERATION_SUFFIX$g_keep
    [ "$(readlink -- "$L")" != "$g_want" ] || return 0
    rm -f -- "$L.link.tmp"
    ln -s -- "$g_want" "$L.link.tmp" && mv -T -- "$L.link.tmp" "$L" ||
        of_die "cannot point '$L' at generation $g_keep ('$g_want')"
    printf 'linked %s -> %s\n' "$L" "$g_want"
}
if [ "$g_keep" -gt 1 ] && { [ -L "$L" ] || [ ! -e "$L" ]; }; then
    g_link_current
elif [ "$g_keep" -gt 1 ] && [ -d "$L" ]; then
    # generation 1: out of the way under a leftover name (removed below, or by the next gc if
    # killed), and the configured path names the current generation at once
    g_remove "$L" "$L${OF_GENERATION_SUFFIX}1.partial"
fi
g_list=$(printf '%s' "$g_list" | sort -n)
while IFS= read -r g_k; do
    [ -z "$g_k" ] || g_remove "$L$OF_GENERATION_SUFFIX$g_k"
done <<EOF
$g_list
EOF
printf 'gc %s: keep generation %s: removed=%s kept=%s\n' "$L" "$g_keep" "$g_removed" "$g_kept"
