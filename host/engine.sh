# of-engine <network> <parent> <subnet> <gateway> <box>
#
# Read-only preflight of the box's Docker engine before its macvlan network is made: the engine
# answers, its API version (printed: `api=1.41`), the parent interface exists, and no network
# overlay-fleet did not create stands in the way: one named <network> without the label
# `overlay-fleet.box=<box>`, or (engines below API 1.47 allow one macvlan network per parent
# interface) another macvlan network on <parent>. Changes nothing.

[ "$#" -eq 5 ] || of_usage "usage: of-engine <network> <parent> <subnet> <gateway> <box>"
network=$1 parent=$2 subnet=$3 gateway=$4 box=$5
case $network in '' | [!A-Za-z0-9]* | *[!A-Za-z0-9_.-]*) of_usage "network name '$network' is not a valid docker name" ;; esac
case $parent in '' | *[!A-Za-z0-9_.@-]*) of_usage "parent interface '$parent' is not an interface name" ;; esac
case $box in '' | *[!a-z0-9-]*) of_usage "box name '$box' must use only a-z 0-9 -" ;; esac

of_have docker || of_die "docker is not installed on this box (containers need Docker Engine)"
of_docker_ready || of_die "docker on this box does not answer (is the engine running?)"
api=$(of_docker_try version --format '{{.Server.APIVersion}}') || of_die "cannot read the engine's API version"
[ -e "/sys/class/net/$parent" ] ||
    of_die "macvlan parent interface '$parent' does not exist on this box (network.parent)"

major=${api%%.*} minor=${api#*.}
case $major.$minor in *[!0-9.]*) of_die "unexpected engine API version '$api'" ;; esac
# Every network of the engine in one inspect: `<name>|<driver>|<parent>|<box label>|<subnets>`.
ids=$(of_docker network ls --quiet) || of_die "cannot list the engine's networks"
set --
while IFS= read -r id; do
    [ -z "$id" ] || set -- "$@" "$id"
done <<EOF
$ids
EOF
networks=$([ "$#" -eq 0 ] || of_docker network inspect --format "{{.Name}}|{{.Driver}}|{{index .Options \"parent\"}}|{{index .Labels \"$OF_BOX_LABEL\"}}|{{range .IPAM.Config}}{{.Subnet}} {{end}}" "$@") ||
    of_die "cannot inspect the engine's networks"
of_lines "$networks"
while of_line; do
    name=${OF_LINE%%|*} rest=${OF_LINE#*|}
    driver=${rest%%|*} rest=${rest#*|}
    nparent=${rest%%|*} rest=${rest#*|}
    label=${rest%%|*}
    if [ "$name" = "$network" ]; then
        [ "$label" = "$box" ] ||
            of_die "a docker network named '$network' exists that overlay-fleet did not create (parent '$nparent'): remove it or choose another network.name"
    elif [ "$driver" = macvlan ] && [ "$label" != "$box" ] && [ "$nparent" = "$parent" ] && { [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 47 ]; }; }; then
        of_die "docker network '$name' already uses '$parent' as macvlan parent, and this engine (API $api) allows one macvlan network per parent interface: remove it or use its name as network.name"
    fi
done
# Engines refuse a network whose addresses overlap another's: one that is not the box's own (those
# the box's containers command replaces) is in the way.
# Each IPv4 CIDR as its first and last address (numbers); the planned one first, then the others'.
clash=$(printf '%s\n' "$networks" | awk -F'|' -v box="$box" -v want="$subnet" '
    BEGIN { split(want, c, "/"); split(c[1], q, "."); size = 2 ^ (32 - c[2]); lo = q[1] * 16777216 + q[2] * 65536 + q[3] * 256 + q[4]; lo -= lo % size; hi = lo + size - 1 }
    $4 != box {
        n = split($5, subnets, " ")
        for (i = 1; i <= n; i++) {
            if (subnets[i] !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\/[0-9]+$/) continue
            split(subnets[i], c, "/"); split(c[1], q, "."); size = 2 ^ (32 - c[2])
            first = q[1] * 16777216 + q[2] * 65536 + q[3] * 256 + q[4]; first -= first % size
            if (first <= hi && lo <= first + size - 1) { print $1 " (" subnets[i] ")"; exit }
        }
    }') || of_die "cannot compare the engine's networks"
[ -z "$clash" ] ||
    of_die "docker network $clash overlaps the planned subnet $subnet, and the engine refuses overlapping networks: remove it or change network.subnet"
printf 'api=%s parent=%s subnet=%s gateway=%s\n' "$api" "$parent" "$subnet" "$gateway"
