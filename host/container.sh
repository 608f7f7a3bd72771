# of-container create <name> <hostname> <image> <imageId> <network> <ip> <mac> <dns|-> <restart> <privileged 0|1> <instanceId> <merged> <target> <maxDown>
# of-container remove <name> <instanceId>
# of-container status <network> <name>...
#
# The container of one instance, made with the box's own docker CLI so that it gets exactly its
# planned MAC on every engine (`docker run --network N --ip A --mac-address M`: container-wide
# MAC below API 1.44, per-endpoint from 1.44; a MAC sent on a later network *connect* is ignored
# below API 1.54, so the container is created on its network directly). After the start the
# script reads back from the engine what the container really got: hostname, IP and MAC must
# equal the plan, or the container is removed again and the script fails naming both values.
#
# Idempotent: a container of this instance that already matches the plan (image id, network,
# address, MAC, hostname, DNS, restart policy, privileged, bind mount) is only started if it is
# stopped; any difference replaces it, holding one of the box's <maxDown> "instance down" slots
# (of_down_slot), so a new image replaces at most that many containers of the box at once; once a
# replacement fails (its instance is down), the run of of-containers replaces no other. A container
# of that name that overlay-fleet did not create (no `overlay-fleet.instance` label of this
# instance) is never touched. The container starts under the box lock taken shared: never while
# a remount (which holds it alone) has the merged dir unmounted.
# The merged dir must be the instance's mounted overlay: a bind mount (not a volume) fails when
# the source is missing instead of creating an empty dir.
# `status` is read-only: one TSV line per name, `container<TAB><name><TAB><state><TAB><ip><TAB><mac><TAB><hostname>`
# with state running, stopped or absent (or one line `engine<TAB>down` when docker does not answer).

# container_inspect: the container of that name as the engine reports it, in f_hostname f_ip f_mac
# (on the network), f_running, f_image, f_label (its instance), f_id and f_config (restart policy,
# privileged, DNS servers each ending in a comma, bind mount, networks: engines decode the DNS
# list as []interface{}, which `join` refuses); false when there is none. One docker call.
container_inspect() {
    f_out=$(of_docker_try inspect --type container --format \
        "{{.Config.Hostname}}|{{with index .NetworkSettings.Networks \"$network\"}}{{.IPAddress}}|{{.MacAddress}}{{else}}|{{end}}|{{.State.Running}}|{{.Image}}|{{index .Config.Labels \"$OF_INSTANCE_LABEL\"}}|{{.Id}}|{{.HostConfig.RestartPolicy.Name}}|{{.HostConfig.Privileged}}|{{range .HostConfig.Dns}}{{.}},{{end}}|{{range .HostConfig.Mounts}}{{.Source}}|{{.Target}}{{end}}|{{range \$n, \$e := .NetworkSettings.Networks}}{{\$n}}{{end}}" \
        "$name") || {
        # No answer (reported): never taken for "no such container"; after a replacement took
        # the old one away (ci_halts set), the caller fails through replaced_failed instead.
        [ "$?" -ne 124 ] || [ -n "${ci_halts-}" ] || exit 1
        return 1
    }
    IFS='|' read -r f_hostname f_ip f_mac f_running f_image f_label f_id f_config <<EOF
$f_out
EOF
}

cmd=${1-}
case $cmd in
    create) [ "$#" -eq 15 ] || of_usage "usage: of-container create <name> <hostname> <image> <imageId> <network> <ip> <mac> <dns|-> <restart> <privileged 0|1> <instanceId> <merged> <target> <maxDown>" ;;
    remove) [ "$#" -eq 3 ] || of_usage "usage: of-container remove <name> <instanceId>" ;;
    status) [ "$#" -ge 2 ] || of_usage "usage: of-container status <network> <name>..." ;;
    *) of_usage "usage: of-container create|remove|status ..." ;;
esac

if [ "$cmd" = status ]; then
    of_check_name "network name" "$2"; network=$2
    shift 2
    for name in "$@"; do of_check_name "container name" "$name"; done
    if ! of_docker_ready; then
        printf 'engine\tdown\n'
        exit 0
    fi
    for name in "$@"; do
        if container_inspect; then
            if [ "$f_running" = true ]; then f_state=running; else f_state=stopped; fi
            printf 'container\t%s\t%s\t%s\t%s\t%s\n' "$name" "$f_state" "$f_ip" "$f_mac" "$f_hostname"
        else
            printf 'container\t%s\tabsent\t\t\t\n' "$name"
        fi
    done
    exit 0
fi
of_check_name "container name" "$2"; name=$2

if [ "$cmd" = remove ]; then
    of_check_id "$3"; id=$3
    # The legacy per-instance delete of a container the box's plan now holds (of_applied_keeps):
    # of-containers manages it.
    ! of_applied_keeps container "$id" || exit 0
    of_docker_ready || of_die "docker on this box does not answer (is the engine running?)"
    network=-
    if ! container_inspect; then
        echo "ok: container $name is absent"
    elif [ "$f_label" != "$id" ]; then
        of_warn "container $name was not created by overlay-fleet for $id: left alone"
    else
        of_docker rm -f "$name" >/dev/null || of_die "cannot remove container $name"
        echo "ok: container $name removed"
    fi
    exit 0
fi

hostname=$3
case $hostname in
    '' | -* | *- | *[!A-Za-z0-9.-]*) of_usage "hostname '$hostname' must use only A-Z a-z 0-9 . - (not starting or ending with -)" ;;
esac
[ "${#hostname}" -le 63 ] || of_usage "hostname '$hostname' is longer than 63 characters"
image=$4
case $image in
    '' | [!a-z0-9]* | *[!A-Za-z0-9._/:@-]*) of_usage "image '$image' is not a docker image reference" ;;
esac
image_id=$5
case $image_id in
    sha256:*) case ${image_id#sha256:} in *[!0-9a-f]* | '') of_usage "image id '$image_id' is not sha256:<hex>" ;; esac ;;
    *) of_usage "image id '$image_id' is not sha256:<hex>" ;;
esac
of_check_name "network name" "$6"; network=$6
of_check_ipv4 "address" "$7"; ip=$7
mac=$8
case $mac in
    [0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) ;;
    *) of_usage "MAC address '$mac' must be six lower-case hex pairs separated by ':'" ;;
esac
dns=$9
if [ "$dns" = - ]; then dns_list=; else dns_list=$dns; fi
rest=$dns_list
while [ -n "$rest" ]; do
    of_check_ipv4 "DNS server" "${rest%%,*}"
    case $rest in *,*) rest=${rest#*,} ;; *) rest= ;; esac
done
restart=${10}
case $restart in
    no | always | unless-stopped | on-failure) ;;
    *) of_usage "restart policy '$restart' must be no, always, unless-stopped or on-failure" ;;
esac
case ${11} in
    0) privileged_bool=false ;;
    1) privileged_bool=true ;;
    *) of_usage "privileged must be 0 or 1, got '${11}'" ;;
esac
of_check_id "${12}"; id=${12}
of_check_path "merged dir" "${13}"; merged=$OF_PATH
of_check_path "mount target" "${14}"; target=$OF_PATH
max_down=${15}
case $max_down in '' | *[!0-9]* | 0*) of_usage "maxDown must be a positive number, got '$max_down'" ;; esac

# OF_CONTAINERS_HALT (set by of-containers for one run over the box): a file that exists once a
# replacement failed. A failed replacement leaves its instance down; the run then replaces no other
# container of the box, so a bad image or a wrong engine takes down one instance (up to maxDown
# at once), not all of them.
halt=${OF_CONTAINERS_HALT-}
# replaced_failed MESSAGE: a replacement that left its instance down fails, halting the run's others.
replaced_failed() {
    [ "$state" != replaced ] || [ -z "$halt" ] || printf '%s\n' "$name: $1" >>"$halt" || :
    of_die "$1"
}

of_docker_ready || of_die "docker on this box does not answer (is the engine running?)"
# The box lock, shared, from the check that the overlay is mounted until the container runs on it.
of_box_lock_shared
of_overlay_mounted_at "$merged" ||
    of_die "the overlay of $id is not mounted at $merged: refusing to start its container on an empty dir"

# The settings the plan gives the container, as container_inspect reports them in f_config.
planned_config="$restart|$privileged_bool|${dns_list:+$dns_list,}|$merged|$target|$network"
state=created
if container_inspect; then
    [ "$f_label" = "$id" ] ||
        of_die "a container named $name exists that overlay-fleet did not create for $id: remove or rename it (nothing was changed)"
    if [ "$f_hostname|$f_ip|$f_mac|$f_image|$f_config" = "$hostname|$ip|$mac|$image_id|$planned_config" ]; then
        state=kept
        if [ "$f_running" != true ]; then
            of_docker start "$name" >/dev/null || of_die "cannot start container $name"
        fi
    else
        of_down_slot "$max_down"
        if [ -n "$halt" ] && [ -s "$halt" ]; then
            of_die "container $name of $id not replaced: a replacement on this box failed first ($(head -n 1 -- "$halt")); left as it is"
        fi
        state=replaced
        of_docker rm -f "$name" >/dev/null || replaced_failed "cannot remove container $name to replace it"
    fi
fi

if [ "$state" != kept ]; then
    set -- --name "$name" --hostname "$hostname" --label "$OF_INSTANCE_LABEL=$id" \
        --network "$network" --ip "$ip" --mac-address "$mac" --restart "$restart" \
        --mount "type=bind,source=$merged,target=$target"
    [ "$privileged_bool" = false ] || set -- "$@" --privileged
    rest=$dns_list
    while [ -n "$rest" ]; do
        set -- "$@" --dns "${rest%%,*}"
        case $rest in *,*) rest=${rest#*,} ;; *) rest= ;; esac
    done
    of_docker run --detach "$@" "$image_id" >/dev/null || replaced_failed "docker run of container $name failed"
fi

planned="hostname=$hostname ip=$ip mac=$mac"
# Read back what the engine really gave a container it made or started (a kept running one was read above).
if [ "$state" != kept ] || [ "$f_running" != true ]; then
    ci_halts=1 # an engine that does not answer now halts the run too: this instance may be down
    container_inspect || replaced_failed "cannot inspect container $name"
    actual="hostname=$f_hostname ip=$f_ip mac=$f_mac"
    if [ "$actual" != "$planned" ]; then
        of_docker rm -f "$name" >/dev/null 2>&1 || :
        replaced_failed "container $name of $id does not have its planned identity: planned $planned, engine reports $actual (container removed)"
    fi
    [ "$f_running" = true ] || replaced_failed "container $name of $id is not running after start"
fi
printf 'ok: container %s of %s %s (%s) %s\n' "$name" "$id" "$state" "$(printf '%.12s' "$f_id")" "$planned"
