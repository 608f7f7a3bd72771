# of-containers set <box> <network> <image> <archive|-> <dns|-> <restart> <privileged 0|1> <target> <maxDown> <jobs>
#                                                                  (stdin: the box's planned containers)
# of-containers remove <box>
#
# The box's containers in one go, one record per line on stdin, fields separated by one tab:
#   <instanceId> <name> <hostname> <ip> <mac> <merged>
# `set` converges the box's containers to the plan: the image made present (`of-image load` of the
# archive copied to the box, or `of-image pull` with `-`), then every managed container of <box>
# (label overlay-fleet.instance=<box>/...) that the plan no longer has is removed, then each planned
# container is made or kept by `of-container create`, <jobs> at a time (its identity read back from
# the engine; a replacement holds one of the box's <maxDown> slots, so at most that many are down). `remove` removes every managed container of <box> (the box left the stack, or it
# became cache-only). A container that fails does not stop the others: its error is printed and
# the status is 1. Containers overlay-fleet did not create are never touched. Runs in the
# installed host library (the other commands beside it).

usage="usage: of-containers set <box> <network> <image> <archive|-> <dns|-> <restart> <privileged 0|1> <target> <maxDown> <jobs> | of-containers remove <box>"
case ${1-} in
    set) [ "$#" -eq 11 ] || of_usage "$usage" ;;
    remove) [ "$#" -eq 2 ] || of_usage "$usage" ;;
    *) of_usage "$usage" ;;
esac
action=$1
box=$2
of_check_id "$box/x"

# Our own calls of of-container remove: not the legacy per-instance deletes, which keep a container
# while the box's plan holds its instance (see of_applied_keeps in host/lib.sh).
OF_APPLY=1
export OF_APPLY

failed=0
planned=" "
records=
if [ "$action" = set ]; then
    network=$3 image=$4 archive=$5 dns=$6 restart=$7 privileged=$8 target=$9 max_down=${10} jobs=${11}
    case $jobs in '' | *[!0-9]* | 0*) of_usage "jobs must be a positive number, got '$jobs'" ;; esac
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
fi

# The managed containers of this box the plan does not hold (all of them on remove).
existing=$(docker ps -a --filter "label=$OF_INSTANCE_LABEL" --format "{{.Names}}	{{.Label \"$OF_INSTANCE_LABEL\"}}") ||
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
fi

if [ "$failed" -gt 0 ]; then
    of_die "$failed of the box's containers failed (see above); the others are done"
fi
