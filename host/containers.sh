# of-containers set <box> <network> <parent> <subnet> <gateway> <image> <archive|-> <dns|-> <restart> <privileged 0|1> <target> <maxDown> <jobs>
#                                                                  (stdin: the box's planned containers)
# of-containers remove <box>
#
# The box's macvlan network and its containers in one go, one record per line on stdin, fields
# separated by one tab:
#   <instanceId> <name> <hostname> <ip> <mac> <merged>
# `set` converges the box to the plan: the image made present (`of-image load` of the archive
# copied to the box, or `of-image pull` with `-`), the network made as planned (ensure_network),
# then every managed container of <box> (label overlay-fleet.instance=<box>/...) that the plan no
# longer has is removed, then each planned container is made or kept by `of-container create`,
# <jobs> at a time (its identity read back from the engine; a replacement holds one of the box's
# <maxDown> slots, so at most that many are down; after a replacement that failed, none other is
# replaced: the ones left say so and fail). `remove` removes every managed container of
# <box> (the box left the stack, or it became cache-only), then its networks. A container that
# fails does not stop the others: its error is printed and the status is 1. Containers and
# networks overlay-fleet did not create are never touched (a network is ours by its label
# overlay-fleet.box=<box>). Runs in the installed host library (the other commands beside it).

usage="usage: of-containers set <box> <network> <parent> <subnet> <gateway> <image> <archive|-> <dns|-> <restart> <privileged 0|1> <target> <maxDown> <jobs> | of-containers remove <box>"
case ${1-} in
    set) [ "$#" -eq 14 ] || of_usage "$usage" ;;
    remove) [ "$#" -eq 2 ] || of_usage "$usage" ;;
    *) of_usage "$usage" ;;
esac
action=$1
box=$2
of_check_id "$box/x"

# One containers command at a time on a box (an up's and `npm run repair`'s): two would race on
# the containers' names and addresses. Not the box lock: the apply holds that one, not this.
of_lock_dir
of_lock "${OF_BOX_LOCK%.lock}-containers.lock" 1800

# Our own calls of of-container remove: not the legacy per-instance deletes, which keep a container
# while the box's plan holds its instance (see of_applied_keeps in host/lib.sh).
OF_APPLY=1
export OF_APPLY

# The engine's networks, one line each: `<full id>|<name>|<box label>` (networks_all, once per run).
networks_all() {
    of_docker network ls --no-trunc --format "{{.ID}}|{{.Name}}|{{.Label \"$OF_BOX_LABEL\"}}" || of_die "cannot list the engine's networks"
}

# users_of ID: the containers on the network with that full id (running or not; an id, not a
# name, which docker would also match as an id prefix), `<name><TAB><instance label>` each.
users_of() {
    of_docker ps -a --filter "network=$1" --format "{{.Names}}	{{.Label \"$OF_INSTANCE_LABEL\"}}" ||
        of_die "cannot list the containers on docker network $1"
}

# foreign_on ID: the names of the containers on that network that are not this box's (none: empty).
foreign_on() {
    fo_list=$(users_of "$1") || exit 1
    fo_names=
    while IFS=$OF_TAB read -r fo_name fo_id; do
        [ -n "$fo_name" ] || continue
        case $fo_id in "$box"/*) ;; *) fo_names="$fo_names $fo_name" ;; esac
    done <<EOF
$fo_list
EOF
    printf '%s' "${fo_names# }"
}

# network_as_is NAME: the network as `<driver>|<parent>|<IPv4 subnet gateway;...>|<box label>`
# (IPv6 entries left out: an engine may add one to every network).
network_as_is() {
    na_out=$(of_docker network inspect --format "{{.Driver}}|{{index .Options \"parent\"}}|{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}};{{end}}|{{index .Labels \"$OF_BOX_LABEL\"}}" "$1") ||
        of_die "cannot inspect docker network $1"
    na_head=${na_out%|*|*} na_rest=${na_out#*|*|}
    na_ipam=${na_rest%|*} na_v4=
    while [ -n "$na_ipam" ]; do
        na_entry=${na_ipam%%;*} na_ipam=${na_ipam#*;}
        case $na_entry in *:* | '') ;; *) na_v4="$na_v4$na_entry;" ;; esac
    done
    printf '%s|%s|%s' "$na_head" "$na_v4" "${na_rest##*|}"
}

# retire_network ID NAME WHY: one of the box's networks that is not as planned (WHY) goes, its
# containers removed first (the loop below makes them anew on the planned network).
retire_network() {
    rn_list=$(users_of "$1") || exit 1
    while IFS=$OF_TAB read -r rn_name rn_id; do
        [ -z "$rn_name" ] || sh ./container remove "$rn_name" "$rn_id" </dev/null ||
            of_die "cannot remove container $rn_name from docker network $2, which must go ($3); the box's other containers on it are down until it can"
    done <<EOF
$rn_list
EOF
    of_docker network rm "$1" >/dev/null ||
        of_die "cannot remove docker network $2 ($3); its containers were removed and are made again once it can be"
    echo "ok network: $2 removed ($3), with its containers: they are made again on the network as planned"
}

# ensure_network: the box's macvlan network as planned ($network on $parent, $subnet via
# $gateway, labelled ours): made when missing, kept when it matches. The box's networks that an
# earlier plan made otherwise (other settings, or another name: engines refuse a second network on
# the same addresses) are retired first, their containers with them (all at once: a network
# change is not bound by maxDown). Refused before anything changes: a network of the planned name
# that overlay-fleet did not make (the apply's engine preflight refuses it first), or one to
# retire that a container overlay-fleet did not create uses.
ensure_network() {
    en_want="macvlan|$parent|$subnet $gateway;|$box"
    en_all=$(networks_all) || exit 1
    en_have=
    # Each network to retire, a line `<id><TAB><name><TAB><why>`: checked, then retired.
    en_retire=
    while IFS='|' read -r en_id en_name en_label; do
        if [ "$en_name" = "$network" ]; then
            [ "$en_label" = "$box" ] ||
                of_die "a docker network named '$network' exists that overlay-fleet did not create: remove it or choose another network.name; no container was changed"
            en_have=$(network_as_is "$en_id") || exit 1
            [ "$en_have" = "$en_want" ] || en_retire="$en_retire$en_id$OF_TAB$en_name${OF_TAB}it is $en_have, the plan wants $en_want$OF_NL"
        elif [ -n "$en_name" ] && [ "$en_label" = "$box" ]; then
            en_retire="$en_retire$en_id$OF_TAB$en_name${OF_TAB}the plan names $network$OF_NL"
        fi
    done <<EOF
$en_all
EOF
    while IFS=$OF_TAB read -r en_id en_name en_why; do
        [ -n "$en_id" ] || continue
        en_foreign=$(foreign_on "$en_id") || exit 1
        [ -z "$en_foreign" ] ||
            of_die "docker network '$en_name' must go ($en_why), but containers overlay-fleet did not create use it: $en_foreign; no container was changed"
    done <<EOF
$en_retire
EOF
    while IFS=$OF_TAB read -r en_id en_name en_why; do
        [ -z "$en_id" ] || retire_network "$en_id" "$en_name" "$en_why"
    done <<EOF
$en_retire
EOF
    if [ "$en_have" = "$en_want" ]; then
        echo "ok network: $network as planned (macvlan on $parent, $subnet via $gateway)"
        return 0
    fi
    of_docker network create --driver macvlan --opt "parent=$parent" --subnet "$subnet" --gateway "$gateway" \
        --label "$OF_BOX_LABEL=$box" "$network" >/dev/null ||
        of_die "cannot create docker network $network (macvlan on $parent, $subnet via $gateway); no container of the box is made until it can be"
    echo "ok network: $network created (macvlan on $parent, $subnet via $gateway)"
}

# remove_networks: the box's networks (labelled ours) removed once its containers are; one that
# other containers still use is kept, naming them.
remove_networks() {
    rm_all=$(networks_all) || exit 1
    while IFS='|' read -r rm_id rm_name rm_label; do
        [ -n "$rm_id" ] && [ "$rm_label" = "$box" ] || continue
        rm_users=$(users_of "$rm_id") || exit 1
        if [ -n "$rm_users" ]; then
            echo "ok network: $rm_name kept, still used by: $(printf '%s\n' "$rm_users" | cut -f1 | tr '\n' ' ')"
        elif of_docker network rm "$rm_id" >/dev/null; then
            echo "ok network: $rm_name removed"
        else
            of_err "cannot remove docker network $rm_name"
            failed=$((failed + 1))
        fi
    done <<EOF
$rm_all
EOF
}

failed=0
planned=" "
records=
if [ "$action" = set ]; then
    network=$3 parent=$4 subnet=$5 gateway=$6 image=$7 archive=$8 dns=$9 restart=${10} privileged=${11} target=${12} max_down=${13} jobs=${14}
    case $jobs in '' | *[!0-9]* | 0*) of_usage "jobs must be a positive number, got '$jobs'" ;; esac
    of_check_name "network name" "$network"
    case $parent in '' | *[!A-Za-z0-9_.@-]*) of_usage "parent interface '$parent' is not an interface name" ;; esac
    case $subnet in
        */[0-9] | */[12][0-9] | */3[0-2]) of_check_ipv4 "the address of subnet $subnet" "${subnet%/*}" ;;
        *) of_usage "subnet '$subnet' is not an IPv4 CIDR (a.b.c.d/n)" ;;
    esac
    of_check_ipv4 "gateway" "$gateway"
    # Every record checked before anything changes; the fields themselves are checked by of-container.
    records=$(cat) || of_die "cannot read the containers from stdin"
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        IFS=$OF_TAB read -r c_id c_name c_hostname c_ip c_mac c_merged c_rest <<EOF || :
$line
EOF
        [ -n "$c_merged" ] && [ -z "$c_rest" ] || of_usage "container record must have 6 tab-separated fields: $line"
        of_check_on_box "$c_id" "$box"
        planned="$planned$c_id "
    done <<EOF
$records
EOF
fi

of_docker_ready || of_die "docker on this box does not answer (is the engine running?)"
# Asked once: of-image and of-container need not ask again (of_docker_ready).
OF_DOCKER_READY=1
export OF_DOCKER_READY

if [ "$action" = set ]; then
    if [ "$archive" = - ]; then
        image_id=$(sh ./image pull "$image" </dev/null) || of_die "the image $image is not on this box; no container was changed"
    else
        image_id=$(sh ./image load "$archive" "$image" </dev/null) || of_die "the image $image is not on this box; no container was changed"
    fi
    ensure_network
fi

# The managed containers of this box the plan does not hold (all of them on remove).
existing=$(of_docker ps -a --filter "label=$OF_INSTANCE_LABEL" --format "{{.Names}}	{{.Label \"$OF_INSTANCE_LABEL\"}}") ||
    of_die "cannot list the engine's containers"
while IFS=$OF_TAB read -r c_name c_id; do
    case $c_id in
        "$box"/*) ;;
        *) continue ;;
    esac
    case $planned in
        *" $c_id "*) continue ;;
    esac
    sh ./container remove "$c_name" "$c_id" </dev/null || failed=$((failed + 1))
done <<EOF
$existing
EOF

if [ "$action" = set ]; then
    # Up to <jobs> containers at a time, each in its own of-container (which holds one of the box's
    # <maxDown> slots while it replaces one); their reports printed in record order.
    out=$(mktemp -d) || of_die "cannot create a temp dir"
    running=0
    queue=
    n=0
    # A signal (a cancelled `pulumi up`, its SSH session gone) stops the running jobs first: none
    # goes on replacing a container after the command ended.
    # pop_job: the oldest running job (`<n>:<pid>`) taken off the queue, in job.
    pop_job() {
        queue=${queue# }
        job=${queue%% *}
        queue=${queue#"$job"}
    }
    stop_jobs() {
        while [ -n "$queue" ]; do
            pop_job
            kill "${job#*:}" 2>/dev/null || :
        done
        wait
        exit "$1"
    }
    trap 'rm -rf -- "$out"' EXIT
    # Once a replacement fails, no other container of the box is replaced in this run (of-container).
    OF_CONTAINERS_HALT=$out/halt
    export OF_CONTAINERS_HALT
    trap 'stop_jobs 129' HUP
    trap 'stop_jobs 130' INT
    trap 'stop_jobs 143' TERM
    # reap: waits for the oldest running job, prints its report and counts its failure.
    reap() {
        pop_job
        if ! wait "${job#*:}"; then failed=$((failed + 1)); fi
        cat -- "$out/${job%%:*}.out"
        cat -- "$out/${job%%:*}.err" >&2
        running=$((running - 1))
    }
    while IFS=$OF_TAB read -r c_id c_name c_hostname c_ip c_mac c_merged; do
        [ -n "$c_id" ] || continue
        n=$((n + 1))
        sh ./container create "$c_name" "$c_hostname" "$image" "$image_id" "$network" "$c_ip" "$c_mac" "$dns" "$restart" \
            "$privileged" "$c_id" "$c_merged" "$target" "$max_down" </dev/null >"$out/$n.out" 2>"$out/$n.err" &
        queue="$queue $n:$!"
        running=$((running + 1))
        [ "$running" -lt "$jobs" ] || reap
    done <<EOF
$records
EOF
    while [ "$running" -gt 0 ]; do reap; done
else
    remove_networks
fi

if [ "$failed" -gt 0 ]; then
    of_die "$failed of the box's containers failed (see above); the others are done"
fi
