#!/usr/bin/env bash
# docker-offline.sh: build and run the image on an air-gapped machine.
#
# Builds ./Dockerfile with no registry and no Docker daemon, then runs the image's tests and the
# -quick benchmark in it. Made for CI (.ci/run calls it after the native tests) on Debian with
# root, where only Debian's archive and the Go module proxy are reachable:
#   - buildah builds the Dockerfile daemonless with --isolation chroot (its default OCI runtime
#     fails on these hosts: "cgroups in hybrid mode not supported"); RUN steps share the host's
#     network, so apt and the Go proxy work inside the build;
#   - no image can be pulled, so the base (golang:*-bookworm's layout) is made here:
#     debootstrap minbase from the host's apt mirror, the host's /usr/local/go, and the host's
#     extra CAs (HTTPS to the Go proxy may be re-signed by them; they live only in the
#     throw-away base, never in the repo);
#   - `buildah run` ignores ENTRYPOINT/CMD, so the image's command is read from its config and
#     run explicitly.
# Everything it creates (containers, images, rootfs, storage) lives under one temporary
# directory and is removed on exit, failure or not. Only the debootstrap tarball is kept, in
# $IOLOOP_DOCKER_CACHE (default /var/cache/ioloop-docker): it saves about two minutes next time.
# Exits non-zero when the image does not build or a run in it fails.
#
# Usage: sudo scripts/docker-offline.sh
# Env:   IOLOOP_DOCKER_CACHE   where the rootfs tarball is kept ("" = no cache)
#        IOLOOP_DEBIAN_MIRROR  Debian archive for debootstrap (default: the host's apt mirror)
#        IOLOOP_DOCKER_OUT     if set, a directory that receives the run's bench.svg and bench.json
set -euo pipefail

readonly suite=bookworm # matches the Dockerfile's default BASE, golang:1.26-bookworm
readonly include=ca-certificates,gcc,libc6-dev,make,git,pkg-config
readonly cache_days=14 # refresh the cached rootfs now and then: it is a Debian point release
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo
readonly cache=${IOLOOP_DOCKER_CACHE-/var/cache/ioloop-docker}
readonly tag=localhost/ioloop-offline-$$

log() { printf '==> [%4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'docker-offline: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, buildah storage)"
[[ -f $repo/Dockerfile ]] || die "no Dockerfile in $repo"
[[ -x /usr/local/go/bin/go ]] || die "no Go toolchain in /usr/local/go to put in the base"

# unmount_under DIR: debootstrap (/proc, /sys, maybe /dev) and overlay storage leave mounts
# behind when interrupted; they must go before rm, or rm would walk into the host's /dev.
unmount_under() {
	local m
	findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r |
		while read -r m; do umount -l "$m" || true; done
}

# A run killed by SIGKILL could not clean up: remove what such runs left (their pid is gone).
for d in /var/tmp/ioloop-docker.*; do
	[[ -f $d/pid ]] || continue
	kill -0 "$(<"$d/pid")" 2>/dev/null && continue
	log "removing $d, left by a run that was killed"
	unmount_under "$d"
	rm -rf --one-file-system "$d"
done

# All state under one directory on disk (not tmpfs: layers are ~2 GB), removed by cleanup.
work=$(mktemp -d /var/tmp/ioloop-docker.XXXXXX)
readonly work
# buildah stages layer blobs in TMPDIR: keep them inside $work too (only buildah's: debootstrap
# and chroot must not see a TMPDIR that does not exist inside the rootfs).
buildah=(env TMPDIR="$work/tmp" buildah --root "$work/storage" --runroot "$work/run"
	--storage-driver overlay)
export BUILDAH_ISOLATION=chroot

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -d $work/storage ]]; then
		"${buildah[@]}" rm --all >/dev/null 2>&1
		"${buildah[@]}" rmi --all --force >/dev/null 2>&1
	fi
	unmount_under "$work"
	rm -rf --one-file-system "$work"
	if ((rc == 0)); then log "done"; else log "FAILED (exit $rc)"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo $$ >"$work/pid"
mkdir "$work/tmp"

# host_mirror prints the Debian archive the host's apt uses for $suite (deb822 or one-line).
host_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk -v s="$suite" '
			BEGIN { RS = ""; FS = "\n" }
			{
				uri = ""; ok = 0; deb = 0
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^#/) continue
					n = split($i, w, /[ \t]+/)
					if (w[1] == "Types:") for (j = 2; j <= n; j++) if (w[j] == "deb") deb = 1
					if (w[1] == "URIs:" && uri == "") uri = w[2]
					if (w[1] == "Suites:") for (j = 2; j <= n; j++) if (w[j] == s) ok = 1
				}
				if (deb && ok && uri != "") { print uri; exit }
			}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		sed -E 's/\[[^]]*\]//' "$f" | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2 }'
	done
}

# --- 1. tools --------------------------------------------------------------------------------
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
	log "installing ${need[*]} from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
log "$(buildah --version)"

# --- 2. the local base: debootstrap + host Go + host CAs --------------------------------------
mirror=${IOLOOP_DEBIAN_MIRROR:-$(host_mirror | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
key=$(printf '%s %s %s' "$suite" "$mirror" "$include" | sha256sum | cut -c1-12)
tarball=${cache:+$cache/rootfs-$suite-$key.tar.gz}

ctr=$("${buildah[@]}" from scratch)
mnt=$("${buildah[@]}" mount "$ctr")
fresh=
if [[ -n $tarball && -f $tarball && -n $(find "$tarball" -mtime -"$cache_days") ]]; then
	log "base: unpacking cached $tarball"
	if ! tar -C "$mnt" --numeric-owner -xzpf "$tarball"; then
		log "base: cached tarball unusable, removing it and starting from nothing"
		rm -f "$tarball"
		find "$mnt" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +
		fresh=1
	fi
else
	fresh=1
fi
if [[ -n $fresh ]]; then
	log "base: debootstrap $suite from $mirror (minbase + $include)"
	# Straight into the container's mount: no second copy of the rootfs on disk.
	env -u TMPDIR debootstrap --variant=minbase --include="$include" "$suite" "$mnt" "$mirror" \
		>"$work/debootstrap.log" 2>&1 || {
		tail -n 30 "$work/debootstrap.log" >&2
		die "debootstrap failed"
	}
	unmount_under "$mnt"
	rm -rf "$mnt/var/cache/apt/archives/"*.deb "$mnt/var/lib/apt/lists/"*_Packages
	if [[ -n $tarball ]]; then
		mkdir -p "$cache"
		find "$cache" -maxdepth 1 -name "rootfs-$suite-*.tar.gz*" -delete
		if tar -C "$mnt" --numeric-owner -czf "$tarball.tmp" .; then
			mv "$tarball.tmp" "$tarball"
		else
			rm -f "$tarball.tmp"
			log "base: warning: could not cache the rootfs in $cache"
		fi
	fi
fi

log "base: adding /usr/local/go ($(/usr/local/go/bin/go env GOVERSION)) and the host's extra CAs"
cp -a /usr/local/go "$mnt/usr/local/go"
install -d -m 1777 "$mnt/go" "$mnt/go/src" "$mnt/go/bin" # as in the golang images
shopt -s nullglob
cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
if ((${#cas[@]})); then
	cp "${cas[@]}" "$mnt/usr/local/share/ca-certificates/"
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$mnt" update-ca-certificates \
		>"$work/ca.log" 2>&1 || {
		cat "$work/ca.log" >&2
		die "update-ca-certificates failed in the base"
	}
fi
"${buildah[@]}" umount "$ctr" >/dev/null
log "base: committing $tag-base"
"${buildah[@]}" config \
	--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--env GOPATH=/go --env GOTOOLCHAIN=local --workingdir /go --cmd bash "$ctr"
"${buildah[@]}" commit --quiet --rm "$ctr" "$tag-base:latest" >/dev/null

# --- 3. the image ----------------------------------------------------------------------------
# Docker 25+ on a systemd host (moby#45534) and containerd 2.0 give build steps and containers
# nofile 1024 soft / 524288 hard; buildah's chroot isolation would give 1024:1024. Build and run
# with Docker's default so that CI meets what a user's `docker build` meets (Go programs raise
# their own soft limit to the hard one; everything else starts at 1024). The hard limit cannot
# go above the host's, even as root: take the host's when it is lower.
readonly docker_soft=1024 docker_hard=524288
host_hard=$(ulimit -Hn)
nofile_hard=$docker_hard
if [[ $host_hard != unlimited ]] && ((host_hard < docker_hard)); then nofile_hard=$host_hard; fi
readonly nofile="$docker_soft:$nofile_hard"

log "image: buildah bud --build-arg BASE=$tag-base --ulimit nofile=$nofile"
"${buildah[@]}" bud --isolation chroot --pull-never --ulimit "nofile=$nofile" \
	--build-arg BASE="$tag-base:latest" --tag "$tag:latest" \
	--file "$repo/Dockerfile" "$repo"

# --- 4. run it: the tests, then the image's own command with -quick --------------------------
run=$("${buildah[@]}" from --pull-never --ulimit "nofile=$nofile" "$tag:latest")
mapfile -t entrypoint < <("${buildah[@]}" inspect --type image \
	--format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$tag:latest")
((${#entrypoint[@]})) || die "the image has no ENTRYPOINT"

limits=$("${buildah[@]}" run --isolation chroot "$run" -- sh -c 'echo "$(ulimit -Sn):$(ulimit -Hn)"')
[[ $limits == "$nofile" ]] || die "nofile in the container is $limits, want $nofile"
log "run: nofile $limits in the container, as under Docker's defaults"

log "run: go test -count=1 ./... ./bench/..."
"${buildah[@]}" run --isolation chroot "$run" -- go test -count=1 ./... ./bench/...

# With an output directory mounted at /out, as the README's `docker run -v "$PWD:/out"` does.
out=$work/out
install -d -m 1777 "$out"
log "run: ${entrypoint[*]} -quick -svg /out/bench.svg -json /out/bench.json"
"${buildah[@]}" run --isolation chroot --volume "$out:/out" "$run" -- \
	"${entrypoint[@]}" -quick -svg /out/bench.svg -json /out/bench.json
for f in bench.svg bench.json; do
	[[ -s $out/$f ]] || die "the benchmark wrote no /out/$f"
done
if [[ -n ${IOLOOP_DOCKER_OUT:-} ]]; then
	mkdir -p "$IOLOOP_DOCKER_OUT"
	cp "$out/bench.svg" "$out/bench.json" "$IOLOOP_DOCKER_OUT/"
fi
log "run: wrote /out/bench.svg ($(stat -c %s "$out/bench.svg") bytes), /out/bench.json ($(stat -c %s "$out/bench.json") bytes)"

log "disk in use under $work at the end: $(du -sh --one-file-system "$work" | cut -f1)"
