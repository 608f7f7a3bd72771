#!/bin/sh
# Upgrading a stack deployed while the docker provider made each box's macvlan network (before
# the box's containers command made it): drops each box's docker provider (`<box>-docker`) and
# its network resource (`<box>-macvlan-network`) from the stack's state. Otherwise the next
# `pulumi up` would delete the network, through the docker plugin, under the running containers.
# Nothing on the boxes changes: the containers command then finds the network as planned and
# keeps it. Does nothing on a stack without them.
#
#   sh ops/forget-docker-network.sh [--stack <stack>]   (in the project directory; only options that
#                                                        both `pulumi stack` and `pulumi state delete` take)
set -eu
listing=$(pulumi stack --show-urns "$@") || exit 1
urns=$(printf '%s\n' "$listing" | grep -o 'urn:pulumi:[^ ]*pulumi:providers:docker::[^ ]*') || exit 0
printf '%s\n' "$urns" | while IFS= read -r urn; do
    pulumi state delete --yes --target-dependents "$@" "$urn" </dev/null
done
