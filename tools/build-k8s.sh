#!/usr/bin/env bash
# Build the local Kubernetes control plane for Surge's e2e tests from Go modules.
#
#   tools/build-k8s.sh            build whatever is missing (idempotent; prints timings)
#   tools/build-k8s.sh helm       build only helm (the chart tests' one binary)
#   tools/build-k8s.sh --print-bin-dir
#
# Needs only Go (>= the version the pinned modules ask for) and network access to the
# Go module proxy. Binaries land in $SURGE_K8S_CACHE/<KUBERNETES_VERSION>/bin
# (default ${XDG_CACHE_HOME:-~/.cache}/surge/k8s); each binary has a .<name>.version
# stamp so a version bump in tools/versions.env rebuilds only what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/versions.env
source "$here/versions.env"

cache_root="${SURGE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/surge/k8s}"
root="$cache_root/$KUBERNETES_VERSION"
bin="$root/bin"
src="$root/src"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin" "$src"

# One build at a time per cache (make k8s racing a test run, two shells, ...).
exec 9>"$root/.lock"
if command -v flock >/dev/null; then
  flock 9
fi

# Never let Go fetch another toolchain behind our back; go 1.27's default jsonv2
# experiment breaks kube-openapi (garbage /openapi/v2), so pin it off when present.
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
go_minor="$(go env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')"
if (( ${go_minor:-0} >= 27 )); then
  export GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}nojsonv2"
fi

log() { printf '[build-k8s %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

have() { # have NAME VERSION -> 0 when the cached binary matches
  [[ -x "$bin/$1" && "$(cat "$bin/.$1.version" 2>/dev/null)" == "$2" ]]
}

timed_build() { # timed_build NAME VERSION MODDIR PKG [LDFLAGS]
  local name="$1" version="$2" moddir="$3" pkg="$4" ldflags="${5:-}"
  if have "$name" "$version"; then
    log "$name $version: cached"
    return 0
  fi
  local start end
  start=$(date +%s)
  log "$name $version: building $pkg"
  (cd "$moddir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$version" > "$bin/.$name.version"
  end=$(date +%s)
  log "$name $version: built in $((end - start)) s"
  echo "$name $version $((end - start))" >> "$root/build-times.txt"
}

# --- k8s.io/kubernetes: a throwaway module requiring it, with every staging module
# (which k8s.io/kubernetes replaces with ./staging/src/...) pinned to v0.<minor>.<patch>.
k8s_module() {
  local dir="$src/kubernetes"
  # The stamp names the commands too: adding one re-resolves the module graph.
  local stamp="$KUBERNETES_VERSION ${K8S_COMMANDS[*]}"
  if [[ -f "$dir/.ready" && "$(cat "$dir/.ready")" == "$stamp" ]]; then
    echo "$dir"; return 0
  fi
  mkdir -p "$dir"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  local go_line
  go_line="$(grep -E '^go [0-9]' "$gomod" | head -1)"
  {
    echo "module surge.local/k8sbuild"
    echo
    echo "$go_line"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -nE 's#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    echo ")"
  } > "$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${K8S_COMMANDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > "$dir/tools.go"
  log "kubernetes $KUBERNETES_VERSION: resolving module graph"
  (cd "$dir" && go mod tidy -e >&2)
  echo "$stamp" > "$dir/.ready"
  echo "$dir"
}

# --- a module that just requires one main-package module at a version.
simple_module() { # simple_module NAME MODULE VERSION PKG -> dir
  local name="$1" module="$2" version="$3" pkg="$4" dir="$src/$1"
  if [[ -f "$dir/.ready" && "$(cat "$dir/.ready")" == "$version" ]]; then
    echo "$dir"; return 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  local go_line gomod
  gomod="$(go mod download -json "$module@$version" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  go_line="$(grep -E '^go [0-9]' "$gomod" | head -1)"
  printf 'module surge.local/%sbuild\n\n%s\n\nrequire %s %s\n' "$name" "$go_line" "$module" "$version" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/tools.go"
  log "$name $version: resolving module graph"
  (cd "$dir" && go mod tidy -e >&2)
  echo "$version" > "$dir/.ready"
  echo "$dir"
}

total_start=$(date +%s)

# helm first, and alone with `helm`: the unit tier's chart tests need only it, so `make test`
# builds it before them and the rest in the background (tools/run-suite.sh).
if ! have helm "$HELM_VERSION"; then
  hdir="$(simple_module helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm)"
  timed_build helm "$HELM_VERSION" "$hdir" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
else
  log "helm $HELM_VERSION: cached"
fi

if [[ "${1:-}" == "helm" ]]; then
  exit 0
fi

# The control plane, kubectl, and what every real node runs (kubelet, kube-proxy).
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

kver="$KUBERNETES_VERSION"
kminor="${kver#v1.}"; kminor="${kminor%%.*}"
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$kver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kminor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$kver -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$kminor"

need_k8s=0
for b in "${K8S_COMMANDS[@]}"; do
  have "$b" "$kver" || need_k8s=1
done
if (( need_k8s )); then
  kdir="$(k8s_module)"
  for b in "${K8S_COMMANDS[@]}"; do
    timed_build "$b" "$kver" "$kdir" "k8s.io/kubernetes/cmd/$b" "$k8s_ldflags"
  done
else
  log "kubernetes $kver: all cached"
fi

if ! have etcd "$ETCD_VERSION"; then
  edir="$(simple_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3)"
  timed_build etcd "$ETCD_VERSION" "$edir" go.etcd.io/etcd/server/v3 \
    "-X go.etcd.io/etcd/api/v3/version.GitSHA=surge"
else
  log "etcd $ETCD_VERSION: cached"
fi

if ! have kwok "$KWOK_VERSION"; then
  wdir="$(simple_module kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok)"
  timed_build kwok "$KWOK_VERSION" "$wdir" sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
else
  log "kwok $KWOK_VERSION: cached"
fi

# Cluster DNS: CoreDNS, run as a pod of the local cluster (kube-system/coredns). Built from
# tools/coredns-min, a main with only the plugins our Corefile uses: the stock main's cloud
# DNS, tracing and etcd plugins made it the slowest cold build. The stamp hashes that module,
# so changing its plugin list rebuilds.
coredns_src="$here/coredns-min"
coredns_pinned="$(sed -nE 's#^require github\.com/coredns/coredns (v[^ ]+)$#\1#p' "$coredns_src/go.mod")"
if [[ "$coredns_pinned" != "$COREDNS_VERSION" ]]; then
  log "tools/coredns-min/go.mod requires coredns ${coredns_pinned:-?}, versions.env says $COREDNS_VERSION;"
  log "set the require line to $COREDNS_VERSION and run 'go mod tidy' in tools/coredns-min"
  exit 1
fi
coredns_stamp="$COREDNS_VERSION min-$(cat "$coredns_src"/main.go "$coredns_src"/go.mod "$coredns_src"/go.sum \
  | sha256sum | cut -c1-12)"
if ! have coredns "$coredns_stamp"; then
  # -mod=readonly: the build never rewrites the checked-in go.mod/go.sum.
  GOFLAGS="-mod=readonly -buildvcs=false" timed_build coredns "$coredns_stamp" "$coredns_src" . \
    "-X github.com/coredns/coredns/coremain.GitCommit=surge-$COREDNS_VERSION-min"
else
  log "coredns $coredns_stamp: cached"
fi

# NetworkPolicy enforcement: kube-router with only its firewall (iptables + ipset) enabled.
if ! have kube-router "$KUBE_ROUTER_VERSION"; then
  rdir="$(simple_module kube-router github.com/cloudnativelabs/kube-router/v2 "$KUBE_ROUTER_VERSION" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)"
  timed_build kube-router "$KUBE_ROUTER_VERSION" "$rdir" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
else
  log "kube-router $KUBE_ROUTER_VERSION: cached"
fi

total_end=$(date +%s)
log "done in $((total_end - total_start)) s; binaries in $bin"
ls -l "$bin" >&2
