#!/bin/sh
# Writes the lab's cache-node test image as a `docker save`-format archive, without an engine:
#
#   sh tools/lab-image.sh OUT.tar        then, on a box: docker load -i OUT.tar
#
# The image, tagged overlay-fleet/cache-node:lab, is a busybox-static root (Debian's
# /bin/busybox, package busybox-static) that serves its mounted cache dir /mnts over HTTP on
# port 80: `busybox httpd -f -p 80 -h /mnts`. Its stop signal is SIGKILL: as PID 1, httpd
# ignores SIGTERM, and `docker stop` would wait 10 s for nothing (it keeps no state). The archive holds manifest.json, repositories,
# the config (<sha256>.json) and one layer (<diff id>/layer.tar). Byte-for-byte deterministic:
# fixed mtimes (epoch), owner root, sorted entries; the same busybox gives the same sha256.
# Env: LAB_IMAGE_BUSYBOX (default /bin/busybox), LAB_IMAGE_TAG (default overlay-fleet/cache-node:lab),
# LAB_IMAGE_MARKER (written to /etc/lab-image in the image: another marker, another image, as
# a new release of a node image would be).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

BUSYBOX=${LAB_IMAGE_BUSYBOX:-/bin/busybox}
TAG=${LAB_IMAGE_TAG:-overlay-fleet/cache-node:lab}
CREATED=1970-01-01T00:00:00Z

die() { echo "lab-image: ERROR: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: lab-image.sh OUT.tar"
OUT=$1
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (run: sh tools/system-deps.sh; package busybox-static)"
# a static busybox: the image has no libc
if command -v ldd >/dev/null && ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; the image needs busybox-static"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 022

# deterministic tar of directory $1's contents to $2
det_tar() {
  (cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    tar --create --file - --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      --no-acls --no-xattrs --no-selinux --no-recursion --files-from - ) >"$2"
}

# ---- the root filesystem (one layer)
root=$tmp/root
mkdir -p "$root/bin" "$root/etc" "$root/mnts" "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox" "$root/bin" "$root/etc" "$root/mnts" "$root"
chmod 1777 "$root/tmp"
ln -s busybox "$root/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '%s\n' "${LAB_IMAGE_MARKER:-}" >"$root/etc/lab-image"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/lab-image"
det_tar "$root" "$tmp/layer.tar"
diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)

# ---- config, manifest
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
config=$(printf '{"architecture":"%s","config":{"Cmd":["/bin/busybox","httpd","-f","-p","80","-h","/mnts"],"Env":["PATH=/bin"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGKILL","Labels":{"org.opencontainers.image.title":"overlay-fleet lab cache node"},"WorkingDir":"/"},"created":"%s","history":[{"created":"%s","created_by":"tools/lab-image.sh (busybox-static root, busybox httpd serving /mnts)"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$CREATED" "$CREATED" "$diff_id")
config_id=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)

arc=$tmp/archive
mkdir -p "$arc/$diff_id"
mv "$tmp/layer.tar" "$arc/$diff_id/layer.tar"
printf '1.0' >"$arc/$diff_id/VERSION"
printf '%s' "$config" >"$arc/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$config_id" "$TAG" "$diff_id" >"$arc/manifest.json"
printf '{"%s":{"%s":"%s"}}\n' "${TAG%:*}" "${TAG##*:}" "$diff_id" >"$arc/repositories"
find "$arc" -type d -exec chmod 0755 {} + && find "$arc" -type f -exec chmod 0644 {} +

mkdir -p "$(dirname "$OUT")"
det_tar "$arc" "$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
echo "lab-image: wrote $OUT ($TAG, image sha256:$config_id, sha256 of the archive $(sha256sum "$OUT" | cut -d' ' -f1))" >&2
