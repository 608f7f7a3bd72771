#!/bin/sh
# The main job (`npm start`): make sure the toolchain is here, bring the local lab up (2 boxes,
# each with its own Docker engine), build the lab's cache-node image archive, run `pulumi up` on
# stacks/Pulumi.lab.yaml (overlays, fstab lines, macvlan network, one container per instance)
# with a file backend inside the project, then print what is on each box. Re-running converges;
# `npm run lab -- down` removes the lab.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "overlay-fleet: the lab needs root (network and mount namespaces, loop devices)" >&2
    exit 1
fi
[ -d node_modules/@pulumi/pulumi ] || npm ci --no-audit --no-fund
toolchain_env=$(sh tools/toolchain.sh --print-env) || exit 1
eval "$toolchain_env"
bash tools/lab.sh up "${OVERLAY_FLEET_LAB_BOXES:-2}"
# No registry here: the stack ships this archive to each box (container.imageArchive).
bash tools/lab-image.sh .lab/cache-node.tar

stack="${OVERLAY_FLEET_STACK:-lab}"
mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
# Lab only: the lab stack's secrets are encrypted with this published passphrase.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-overlay-fleet-lab}"
# A stack deployed to an older lab (since recreated, e.g. by the e2e tests) describes boxes that
# are gone: its state is dropped (the stack's config file stays) and the stack starts afresh.
lab_id=$(bash tools/lab.sh id)
lab_mark=".pulumi-state/lab-id.$stack"
if [ -s "$lab_mark" ] && [ "$(cat "$lab_mark")" != "$lab_id" ] && pulumi stack select "$stack" >/dev/null 2>&1; then
    echo "overlay-fleet: the lab was recreated since stack $stack was deployed: starting its state afresh"
    pulumi stack rm --yes --force --preserve-config "$stack" >/dev/null
fi
pulumi stack select --create "$stack" >/dev/null
printf '%s\n' "$lab_id" >"$lab_mark"
# A lab stack of an earlier overlay-fleet keeps its network as a docker resource (README: Upgrading).
sh ops/forget-docker-network.sh --stack "$stack"
pulumi up --yes --stack "$stack" --parallel 8
echo
node -r ts-node/register/transpile-only ops/status.ts --stack "$stack"
