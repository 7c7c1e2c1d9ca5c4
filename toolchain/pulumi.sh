#!/usr/bin/env bash
# toolchain/pulumi.sh - build and cache the Pulumi engine, the Python language host
# and the provider plugins (kubernetes, tls, random) from Go modules.
#
# This machine reaches package registries only (no GitHub releases, no get.pulumi.com),
# so everything is compiled from the Go module proxy. Results are cached OUTSIDE the repo,
# one folder per tool and version, under ${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}:
#
#   $CACHE/pulumi-v3.259.0/bin/               pulumi, pulumi-language-python(+ -exec)
#   $CACHE/pulumi-resource-NAME-vX.Y.Z/bin/   provider plugin binaries
#   $CACHE/pulumi-home/                       PULUMI_HOME with the plugins installed
#   $CACHE/logs/                              build logs and build-times.txt
#
# Usage:
#   toolchain/pulumi.sh                 build whatever is missing (progress on stderr), then print the env
#   toolchain/pulumi.sh --print-env     same, quiet when all is cached; stdout is only the exports:
#                                           eval "$(toolchain/pulumi.sh --print-env)"
#   toolchain/pulumi.sh --status        show what is cached (builds nothing)
#   toolchain/pulumi.sh --rebuild NAME  drop one cached piece (cli|langhost|kubernetes|tls|random) and rebuild it
#   toolchain/pulumi.sh --write-src DIR write our Go modules (toolchain/go/) into DIR as they are built:
#                                       go.mod given the versions of versions.env (for go vet; builds nothing)
#   toolchain/pulumi.sh --help
#
# What is built, and how (the pins: toolchain/versions.env; the Go sources of our own:
# toolchain/go/, each piece rebuilt when they change):
#  * pulumi CLI: github.com/pulumi/pulumi/pkg/v3/cmd/pulumi, with the sdk/v3 module laid out
#    beside it (pkg/go.mod replaces sdk/v3 => ../sdk), version-stamped.
#  * pulumi-language-python: the proxy does not serve the untagged module
#    github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 (403 "This module version
#    is not available" for every query), so a small stand-in language host of ours
#    (toolchain/go/langhost) is built against sdk/v3. It runs programs through the official
#    pulumi-language-python-exec script from the sdk/v3 zip and resolves Python with sdk/v3's
#    python/toolchain package (virtualenv / pip / uv / poetry options).
#  * pulumi-resource-kubernetes: provider/v4 module at the pseudo-version the proxy serves
#    (commit f47bc2d6f199, 2026-01-15 = PyPI pulumi-kubernetes 4.25.0a1768448096), with
#    sdk/v4 laid out beside it (provider/go.mod replaces sdk/v4 => ../sdk).
#  * pulumi-resource-tls / pulumi-resource-random: the proxy serves no version at all of
#    github.com/pulumi/pulumi-tls/provider/v5 or github.com/pulumi/pulumi-random/provider/v4.
#    They are Terraform-bridged providers, so the same thing is assembled here from modules the
#    proxy does serve: the upstream Terraform provider (through a `shim` module, which may import
#    its internal/provider package), pulumi-terraform-bridge's plugin-framework bridge, and a
#    small ProviderInfo with the same token mapping (toolchain/go/tls, toolchain/go/random, the
#    shared part in toolchain/go/bridged)
#    (tls:index/privateKey:PrivateKey, random:index/randomString:RandomString, ...). Its schema
#    is generated with the bridge's tfgen. The plugin is stamped with the PyPI SDK version it
#    is paired with, so the engine finds it by exact version. The pairing was checked: the
#    Python SDK surface (resource classes and their properties) of pulumi-tls 5.3.0..5.5.1 is
#    identical (5.6.x adds write-only fields from a newer upstream), and that of pulumi-random
#    4.15.0..4.21.4 is identical (upstream random 3.6.0 .. 3.7.x changed no managed resource).
#    Not carried over from pulumi-tls/pulumi-random: their state-upgrade hooks for stacks created
#    by much older plugin versions, and documentation text in the schema (built with --skip-docs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The versions, and the exact Go modules each piece is built from: toolchain/versions.env.
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$HERE/versions.sh" PULUMI_VERSION PULUMI_KUBERNETES_VERSION PULUMI_TLS_VERSION PULUMI_RANDOM_VERSION \
  K8S_PROVIDER_MODVER K8S_SDK_MODVER TF_BRIDGE_MODVER TF_PLUGIN_SDK_FORK_MODVER \
  TLS_UPSTREAM_MODVER RANDOM_UPSTREAM_MODVER

CACHE="${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}"
CLI_DIR="$CACHE/pulumi-v$PULUMI_VERSION"
K8S_DIR="$CACHE/pulumi-resource-kubernetes-v$PULUMI_KUBERNETES_VERSION"
TLS_DIR="$CACHE/pulumi-resource-tls-v$PULUMI_TLS_VERSION"
RANDOM_DIR="$CACHE/pulumi-resource-random-v$PULUMI_RANDOM_VERSION"
PHOME="$CACHE/pulumi-home"
LOGS="$CACHE/logs"
BUILD_ROOT="$CACHE/build"

SHOW_PLUGINS=1
MODE=build

say() { echo "pulumi.sh: $*" >&2; }   # progress goes to stderr; stdout carries only the exports
die() { echo "pulumi.sh: error: $*" >&2; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "no Go toolchain found (need go >= 1.25 on PATH or at /usr/local/go/bin/go)"; fi
  local go_dir
  go_dir=$(dirname "$GO")
  export PATH="$go_dir:$PATH"
  export GOFLAGS="${GOFLAGS:--buildvcs=false}"
  export GOTOOLCHAIN=local
}

# Directory of a downloaded module (the read-only copy in GOMODCACHE).
moddir() {
  local out
  out=$(cd "$BUILD_ROOT" && go mod download -json "$1" 2>&1) || die "go mod download $1 failed: $out"
  python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); e=d.get("Error"); print(d["Dir"]) if not e else sys.exit("ERR "+e)' <<<"$out" \
    || die "go mod download $1: $out"
}

# run_logged CMD... : run a build step, its output appended to the current step's log
run_logged() {
  local log="$LOGS/${CUR_STEP:-misc}.log"
  if ! "$@" >>"$log" 2>&1; then
    echo "pulumi.sh: step '${CUR_STEP:-misc}' failed running: $*" >&2
    echo "pulumi.sh: last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

timed() { # timed LABEL FUNC : run FUNC, append the wall-clock time to build-times.txt
  local label=$1 fn=$2 t0 t1
  CUR_STEP=$label
  t0=$(date +%s)
  say "building $label (log: $LOGS/$label.log) ..."
  : >"$LOGS/$label.log"
  "$fn"
  t1=$(date +%s)
  printf '%s %s %ss (%s min)\n' "$(date -u +%FT%TZ)" "$label" "$((t1 - t0))" \
    "$(awk -v s=$((t1 - t0)) 'BEGIN{printf "%.1f", s/60}')" >>"$LOGS/build-times.txt"
  say "built $label in $((t1 - t0))s"
}

fresh_build_dir() { # fresh_build_dir NAME -> prints path
  local d="$BUILD_ROOT/$1"
  if [[ -d "$d" ]]; then chmod -R u+w "$d"; rm -rf "$d"; fi
  mkdir -p "$d"
  echo "$d"
}

drop_build_dir() { local d="$BUILD_ROOT/$1"; [[ -d "$d" ]] && { chmod -R u+w "$d"; rm -rf "$d"; }; return 0; }

# Move a finished bin dir into place atomically.
# The Go sources under toolchain/go/ a piece is built from, as one hash, kept beside its binary
# (.source-PIECE): a change to those sources rebuilds the piece although its version (the cache
# folder's name) is the same, so a warm cache never hides a change to them.
source_stamp() { # source_stamp langhost|tls|random
  local dirs=("$1")
  [[ $1 == langhost ]] || dirs+=(bridged)
  (cd "$HERE/go" && find "${dirs[@]}" -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}
current() { # current BINARY PIECE: BINARY exists and was built from toolchain/go/ as it is now
  [[ -x "$1" && "$(cat "$(dirname "$1")/.source-$2" 2>/dev/null)" == "$(source_stamp "$2")" ]]
}

install_dir() { # install_dir STAGE FINAL
  rm -rf "$2.old"; [[ -d "$2" ]] && mv "$2" "$2.old"
  mv "$1" "$2"; rm -rf "$2.old"
}

# ---------------------------------------------------------------------------------------------
# 1. Pulumi CLI
# ---------------------------------------------------------------------------------------------
build_cli() {
  local b pkg sdk
  b=$(fresh_build_dir cli)
  pkg=$(moddir "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION")
  sdk=$(moddir "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION")
  cp -r "$pkg" "$b/pkg"; cp -r "$sdk" "$b/sdk"; chmod -R u+w "$b"
  mkdir -p "$b/out/bin"
  (cd "$b/pkg" && run_logged go build -o "$b/out/bin/pulumi" \
      -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" ./cmd/pulumi)
  install_dir "$b/out" "$CLI_DIR"   # the language host is added to the same bin dir later
  drop_build_dir cli
}

# ---------------------------------------------------------------------------------------------
# 2. Python language host (stand-in, see header) + pulumi-language-python-exec
# ---------------------------------------------------------------------------------------------
write_langhost_src() { # write_langhost_src DIR: toolchain/go/langhost, with its sdk/v3 version
  cp -r "$HERE/go/langhost/." "$1/"
  (cd "$1" && go mod edit -require="github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION")
}

build_langhost() {
  local b sdk out="$CLI_DIR/bin"
  [[ -x "$out/pulumi" ]] || die "internal: CLI missing in $out"
  b=$(fresh_build_dir langhost)
  sdk=$(moddir "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION")
  write_langhost_src "$b"
  (cd "$b" && run_logged go mod tidy \
     && run_logged go build -o "$b/pulumi-language-python" \
          -ldflags "-X main.Version=$PULUMI_VERSION" .)
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
  source_stamp langhost >"$out/.source-langhost"
  mv -f "$b/pulumi-language-python" "$out/pulumi-language-python"   # last: marks the step done
  # Official shim script for Python component providers (plain copy from sdk/v3).
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/pulumi-resource-pulumi-python"
  drop_build_dir langhost
}

# ---------------------------------------------------------------------------------------------
# 3a. pulumi-resource-kubernetes
# ---------------------------------------------------------------------------------------------
build_kubernetes() {
  local b prov sdk stage
  b=$(fresh_build_dir kubernetes)
  prov=$(moddir "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MODVER")
  sdk=$(moddir "github.com/pulumi/pulumi-kubernetes/sdk/v4@$K8S_SDK_MODVER")
  cp -r "$prov" "$b/provider"; cp -r "$sdk" "$b/sdk"; chmod -R u+w "$b"
  stage="$b/out/bin"; mkdir -p "$stage"
  (cd "$b/provider/cmd/pulumi-resource-kubernetes" \
     && run_logged env VERSION="$PULUMI_KUBERNETES_VERSION" go generate .)
  (cd "$b/provider" && run_logged go build -o "$stage/pulumi-resource-kubernetes" \
     -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
     ./cmd/pulumi-resource-kubernetes)
  install_dir "$b/out" "$K8S_DIR"
  drop_build_dir kubernetes
}

# ---------------------------------------------------------------------------------------------
# 3b. Terraform-bridged providers (tls, random)
# ---------------------------------------------------------------------------------------------
# write_bridged_src DIR NAME UPSTREAM_MODVER: toolchain/go/NAME and toolchain/go/bridged in DIR,
# their go.mod files given the versions of versions.env.
write_bridged_src() {
  local d=$1 name=$2 upver=$3 upmod
  cp -r "$HERE/go/bridged" "$d/bridged"; cp -r "$HERE/go/$name" "$d/$name"; chmod -R u+w "$d"
  # The shim lives under the upstream module's path (so that it may import internal/provider):
  # its module path names the upstream module.
  upmod=$(cd "$d/$name/shim" && go mod edit -json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Module"]["Path"].removesuffix("/shim"))')
  (cd "$d/$name/shim" && go mod edit -require="$upmod@$upver")
  (cd "$d/$name" && go mod edit -require="$upmod/shim@v0.0.0" -require=mesh.local/bridged@v0.0.0 \
     -require="github.com/pulumi/pulumi-terraform-bridge/v3@$TF_BRIDGE_MODVER" \
     -replace="github.com/hashicorp/terraform-plugin-sdk/v2=github.com/pulumi/terraform-plugin-sdk/v2@$TF_PLUGIN_SDK_FORK_MODVER")
}

build_bridged() { # build_bridged NAME VERSION UPSTREAM_MODVER FINAL_DIR
  local name=$1 ver=$2 upver=$3 final=$4 b d ld
  b=$(fresh_build_dir "$name")
  d="$b/$name"
  write_bridged_src "$b" "$name" "$upver"
  ld="-X mesh.local/pulumi-resource-$name.Version=$ver"
  (
    cd "$d"
    run_logged go mod tidy
    # tfgen: Pulumi schema + bridge metadata from the upstream provider's schema (no network).
    mkdir -p "$b/gen"
    run_logged go build -o "$b/gen/pulumi-tfgen-$name" -ldflags "$ld" "./cmd/pulumi-tfgen-$name"
    run_logged "$b/gen/pulumi-tfgen-$name" schema --skip-docs --skip-examples --out "$b/gen"
    cp "$b/gen/bridge-metadata.json" "$d/bridge-metadata.json"
    python3 - "$b/gen/schema.json" "$d/cmd/pulumi-resource-$name/schema-embed.json" "$ver" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["version"] = sys.argv[3]
json.dump(spec, open(sys.argv[2], "w"), separators=(",", ":"))
PY
    mkdir -p "$b/out/bin"
    run_logged go build -o "$b/out/bin/pulumi-resource-$name" -ldflags "$ld" "./cmd/pulumi-resource-$name"
    cp "$b/gen/schema.json" "$b/out/schema.json"
  )
  source_stamp "$name" >"$b/out/bin/.source-$name"
  install_dir "$b/out" "$final"
  drop_build_dir "$name"
}

build_tls() { build_bridged tls "$PULUMI_TLS_VERSION" "$TLS_UPSTREAM_MODVER" "$TLS_DIR"; }
build_random() { build_bridged random "$PULUMI_RANDOM_VERSION" "$RANDOM_UPSTREAM_MODVER" "$RANDOM_DIR"; }

# ---------------------------------------------------------------------------------------------
# 4. Plugins into PULUMI_HOME
# ---------------------------------------------------------------------------------------------
plugin_installed() { # NAME VERSION
  compgen -G "$PHOME/plugins/resource-$1-v$2/pulumi-resource-$1*" >/dev/null
}

install_plugin() { # NAME VERSION BINARY
  local name=$1 ver=$2 bin=$3
  local inst="$PHOME/plugins/resource-$name-v$ver/pulumi-resource-$name"
  plugin_installed "$name" "$ver" && cmp -s "$inst" "$bin" && return 0
  rm -rf "$PHOME/plugins/resource-$name-v$ver"*   # none yet, or another build of it
  say "installing plugin resource $name $ver into $PHOME"
  mkdir -p "$PHOME"
  PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true \
    "$CLI_DIR/bin/pulumi" plugin install resource "$name" "$ver" --file "$bin" >>"$LOGS/plugins.log" 2>&1 \
    || { tail -n 20 "$LOGS/plugins.log" >&2; die "plugin install $name $ver failed"; }
  plugin_installed "$name" "$ver" || die "plugin $name $ver not found under $PHOME/plugins after install"
  # `plugin install --file` copies the binary: hard-link the bin-dir copy to it to halve the disk use.
  if [[ -f "$inst" ]] && cmp -s "$inst" "$bin"; then ln -f "$inst" "$bin" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------------------------------------
print_env() {
  # The plugins' folders are on PATH too: the SDKs (requirements.txt) are newer releases than the
  # plugins built here, and the engine takes a plugin found on PATH whatever version the SDK asks
  # for, where it would look for exactly that version in PULUMI_HOME.
  # shellcheck disable=SC2016 # $PATH is for the shell that evals this line, not expanded here
  printf 'export PATH="%s:%s:%s:%s:$PATH"; export PULUMI_HOME="%s"; export PULUMI_SKIP_UPDATE_CHECK=true\n' \
    "$CLI_DIR/bin" "$K8S_DIR/bin" "$TLS_DIR/bin" "$RANDOM_DIR/bin" "$PHOME"
}

status() {
  local ok
  for p in "cli:$CLI_DIR/bin/pulumi" "langhost:$CLI_DIR/bin/pulumi-language-python" \
           "kubernetes:$K8S_DIR/bin/pulumi-resource-kubernetes" "tls:$TLS_DIR/bin/pulumi-resource-tls" \
           "random:$RANDOM_DIR/bin/pulumi-resource-random"; do
    ok=missing; [[ -x "${p#*:}" ]] && ok=ok
    printf '%-11s %-8s %s\n' "${p%%:*}" "$ok" "${p#*:}"
  done
  if [[ -x "$CLI_DIR/bin/pulumi" ]]; then
    PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true "$CLI_DIR/bin/pulumi" plugin ls 2>&1 || true
  fi
  [[ -d "$CACHE" ]] && du -sh "$CACHE" 2>/dev/null || true
  [[ -f "$LOGS/build-times.txt" ]] && { echo "build times:"; cat "$LOGS/build-times.txt"; } || true
}

ensure_all() {
  local missing=0
  [[ -x "$CLI_DIR/bin/pulumi" ]] || missing=1
  current "$CLI_DIR/bin/pulumi-language-python" langhost || missing=1
  [[ -x "$K8S_DIR/bin/pulumi-resource-kubernetes" ]] || missing=1
  current "$TLS_DIR/bin/pulumi-resource-tls" tls || missing=1
  current "$RANDOM_DIR/bin/pulumi-resource-random" random || missing=1
  plugin_installed kubernetes "$PULUMI_KUBERNETES_VERSION" || missing=1
  plugin_installed tls "$PULUMI_TLS_VERSION" || missing=1
  plugin_installed random "$PULUMI_RANDOM_VERSION" || missing=1
  [[ $missing == 0 ]] && return 0   # fast path: everything cached

  find_go
  command -v python3 >/dev/null || die "python3 is needed"
  mkdir -p "$CACHE" "$LOGS" "$BUILD_ROOT"
  exec 9>"$CACHE/.lock"
  flock 9   # one builder at a time; a second caller waits and then finds the cache filled

  [[ -x "$CLI_DIR/bin/pulumi" ]] || timed "cli-v$PULUMI_VERSION" build_cli
  current "$CLI_DIR/bin/pulumi-language-python" langhost || timed "langhost-v$PULUMI_VERSION" build_langhost
  [[ -x "$K8S_DIR/bin/pulumi-resource-kubernetes" ]] || timed "kubernetes-v$PULUMI_KUBERNETES_VERSION" build_kubernetes
  current "$TLS_DIR/bin/pulumi-resource-tls" tls || timed "tls-v$PULUMI_TLS_VERSION" build_tls
  current "$RANDOM_DIR/bin/pulumi-resource-random" random || timed "random-v$PULUMI_RANDOM_VERSION" build_random

  install_plugin kubernetes "$PULUMI_KUBERNETES_VERSION" "$K8S_DIR/bin/pulumi-resource-kubernetes"
  install_plugin tls "$PULUMI_TLS_VERSION" "$TLS_DIR/bin/pulumi-resource-tls"
  install_plugin random "$PULUMI_RANDOM_VERSION" "$RANDOM_DIR/bin/pulumi-resource-random"
  if [[ $SHOW_PLUGINS == 1 ]]; then
    PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true "$CLI_DIR/bin/pulumi" plugin ls >&2
  fi
}

# Sourcing the file only defines the functions (handy for debugging one step).
[[ "${BASH_SOURCE[0]}" != "$0" ]] && return 0

case "${1:-}" in
  ""|--build) MODE=build ;;
  --print-env) MODE="env"; SHOW_PLUGINS=0 ;;
  --status) MODE=status ;;
  --rebuild)
    MODE=build
    case "${2:-}" in
      cli) rm -rf "$CLI_DIR" ;;
      langhost) rm -f "$CLI_DIR/bin/pulumi-language-python" ;;
      kubernetes) rm -rf "$K8S_DIR" "$PHOME/plugins/resource-kubernetes-v$PULUMI_KUBERNETES_VERSION"* ;;
      tls) rm -rf "$TLS_DIR" "$PHOME/plugins/resource-tls-v$PULUMI_TLS_VERSION"* ;;
      random) rm -rf "$RANDOM_DIR" "$PHOME/plugins/resource-random-v$PULUMI_RANDOM_VERSION"* ;;
      *) die "--rebuild needs one of: cli langhost kubernetes tls random" ;;
    esac ;;
  --write-src)
    out=${2:?--write-src needs a folder}
    find_go
    mkdir -p "$out/langhost" "$out/tls" "$out/random"
    write_langhost_src "$out/langhost"
    write_bridged_src "$out/tls" tls "$TLS_UPSTREAM_MODVER"
    write_bridged_src "$out/random" random "$RANDOM_UPSTREAM_MODVER"
    exit 0 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

case $MODE in
  status) status ;;
  env) ensure_all; print_env ;;
  build) ensure_all; print_env ;;
esac
