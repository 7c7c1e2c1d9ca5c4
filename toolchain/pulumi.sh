#!/usr/bin/env bash
# toolchain/pulumi.sh - provide the Pulumi engine, the Python language host and the provider
# plugins (kubernetes, tls, random), taking per piece what the machine has:
#  * the CLI: an official `pulumi` on PATH (not .venv's, not a build of ours) whose version is at
#    least PULUMI_VERSION and that has pulumi-language-python beside it; else built.
#  * each plugin: `pulumi plugin install resource NAME VERSION` of the version its SDK pins
#    (PULUMI_*_SDK_VERSION), into our PULUMI_HOME, where the engine finds it by exact version;
#    tried only when get.pulumi.com or api.github.com answers, bounded in time. Else built, and
#    put on PATH, where the engine takes it whatever version the SDK asks for. Which way each
#    plugin went is kept in $CACHE/origins/, so later runs report it without probing again
#    (`--rebuild NAME` forgets it).
# A machine that reaches package registries only (no GitHub releases, no get.pulumi.com) builds
# everything from the Go module proxy. Results are cached OUTSIDE the repo, one folder per tool
# and version, under ${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}:
#
#   $CACHE/pulumi-v3.259.0/bin/               pulumi, pulumi-language-python(+ -exec)
#   $CACHE/pulumi-resource-NAME-vX.Y.Z/bin/   provider plugin binaries
#   $CACHE/pulumi-home/                       PULUMI_HOME with the plugins installed
#   $CACHE/origins/                           how each plugin was got (downloaded or built)
#   $CACHE/logs/                              build logs and build-times.txt
#
# Usage:
#   toolchain/pulumi.sh                 build whatever is missing (progress on stderr), then print the env
#   toolchain/pulumi.sh --print-env     same, no build progress when all is cached; stdout is only
#                                       the exports: eval "$(toolchain/pulumi.sh --print-env)"
#   toolchain/pulumi.sh --no-build      (with the above) take what the machine has or can download,
#                                       build nothing: report what would be built and exit 3 if any
#   toolchain/pulumi.sh --status        show what is cached (builds nothing)
#   toolchain/pulumi.sh --rebuild NAME  drop one cached piece (cli|langhost|kubernetes|tls|random) and rebuild it
#   toolchain/pulumi.sh --write-src DIR write our Go modules (toolchain/go/) into DIR as they are built:
#                                       go.mod given the versions of versions.env (for go vet; builds nothing)
#   toolchain/pulumi.sh --help
# Each run says on stderr which way each piece was got (`toolchain: ...` lines).
# Environment: MESH_PLUGIN_PROBE_URLS (default "https://get.pulumi.com https://api.github.com"):
# where plugin downloads come from, any answer counts as reachable; MESH_PLUGIN_INSTALL_TIMEOUT
# (seconds, default 60) bounds each `pulumi plugin install`.
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
  PULUMI_KUBERNETES_SDK_VERSION PULUMI_TLS_SDK_VERSION PULUMI_RANDOM_SDK_VERSION K8S_PROVIDER_MODVER K8S_SDK_MODVER TF_BRIDGE_MODVER TF_PLUGIN_SDK_FORK_MODVER \
  TLS_UPSTREAM_MODVER RANDOM_UPSTREAM_MODVER
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

CACHE="${MESH_TOOLCHAIN_CACHE:-$HOME/.cache/mesh-toolchain}"
CLI_DIR="$CACHE/pulumi-v$PULUMI_VERSION"
K8S_DIR="$CACHE/pulumi-resource-kubernetes-v$PULUMI_KUBERNETES_VERSION"
TLS_DIR="$CACHE/pulumi-resource-tls-v$PULUMI_TLS_VERSION"
RANDOM_DIR="$CACHE/pulumi-resource-random-v$PULUMI_RANDOM_VERSION"
PHOME="$CACHE/pulumi-home"
LOGS="$CACHE/logs"
BUILD_ROOT="$CACHE/build"
ORIGINS="$CACHE/origins"
VENV_BIN="$(dirname "$HERE")/.venv/bin"

PLUGINS=(kubernetes tls random)
declare -A SDK_VERSION=([kubernetes]=$PULUMI_KUBERNETES_SDK_VERSION [tls]=$PULUMI_TLS_SDK_VERSION
  [random]=$PULUMI_RANDOM_SDK_VERSION)
declare -A BUILT_VERSION=([kubernetes]=$PULUMI_KUBERNETES_VERSION [tls]=$PULUMI_TLS_VERSION
  [random]=$PULUMI_RANDOM_VERSION)
declare -A BUILT_DIR=([kubernetes]=$K8S_DIR [tls]=$TLS_DIR [random]=$RANDOM_DIR)

SHOW_PLUGINS=1
MODE=build
CLI_FRESH=0                # what this run got, as against what it found in the cache
declare -A FRESH=()
declare -A WOULD=()        # --no-build: piece (cli or a plugin) -> why it would be built

say() { echo "pulumi.sh: $*" >&2; }   # progress goes to stderr; stdout carries only the exports
die() { echo "pulumi.sh: error: $*" >&2; exit 1; }

find_go() { # find_go PIECE...: Go, to build the PIECEs
  need_go "$@"
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
  go_source_hash "${dirs[@]}"
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
    "$PULUMI_CLI" plugin install resource "$name" "$ver" --file "$bin" >>"$LOGS/plugins.log" 2>&1 \
    || { tail -n 20 "$LOGS/plugins.log" >&2; die "plugin install $name $ver failed"; }
  plugin_installed "$name" "$ver" || die "plugin $name $ver not found under $PHOME/plugins after install"
  # `plugin install --file` copies the binary: hard-link the bin-dir copy to it to halve the disk use.
  if [[ -f "$inst" ]] && cmp -s "$inst" "$bin"; then ln -f "$inst" "$bin" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------------------------------------
# 5. What the machine has: an official CLI on PATH, plugins from Pulumi's own acquisition
# ---------------------------------------------------------------------------------------------
version_at_least() { # version_at_least HAVE WANT (X.Y.Z; a pre-release of WANT is older than WANT)
  local have=${1%%+*} core
  core=${have%%-*}
  [[ $core == "$2" && $have != "$core" ]] && return 1
  [[ "$(printf '%s\n%s\n' "$2" "$core" | sort -V | head -n 1)" == "$2" ]]
}

# official_cli: sets OFFICIAL_DIR (pulumi and pulumi-language-python are there) and
# OFFICIAL_VERSION, or CLI_WHY: why no pulumi on PATH is taken.
official_cli() {
  local cand real dir version found venv_bin reasons=()
  OFFICIAL_DIR="" OFFICIAL_VERSION="" CLI_WHY=""
  venv_bin=$(readlink -f "$VENV_BIN" || true)
  while read -r cand; do
    # .venv/bin holds what an earlier setup linked, not what the machine has.
    [[ "$(readlink -f "$(dirname "$cand")")" == "$venv_bin" ]] && continue
    real=$(readlink -f "$cand")
    case $real in "$CACHE"/*) reasons+=("$cand is a build of ours"); continue ;; esac
    version=$(PULUMI_SKIP_UPDATE_CHECK=true timeout 30 "$cand" version 2>/dev/null | head -n 1) || true
    version=${version#v}
    if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
      reasons+=("\`$cand version\` said '$version'"); continue
    fi
    if ! version_at_least "$version" "$PULUMI_VERSION"; then
      reasons+=("pulumi $version on PATH is older than $PULUMI_VERSION"); continue
    fi
    found=""
    for dir in "$(dirname "$cand")" "$(dirname "$real")"; do
      if [[ -x $dir/pulumi && -x $dir/pulumi-language-python ]]; then found=$dir; break; fi
    done
    if [[ -z $found ]]; then
      reasons+=("pulumi $version at $cand has no pulumi-language-python beside it"); continue
    fi
    OFFICIAL_DIR=$found OFFICIAL_VERSION=$version
    return 0
  done < <(type -ap pulumi || true)
  if ((${#reasons[@]})); then
    printf -v CLI_WHY '%s; ' "${reasons[@]}"
    CLI_WHY=${CLI_WHY%; }
  else
    CLI_WHY="no pulumi on PATH"
  fi
  return 1
}

# Pulumi downloads plugins from get.pulumi.com, else GitHub. A machine that reaches neither
# should not wait on `pulumi plugin install` three times: one quick probe decides.
PROBE_WHY=""
plugin_sites_reachable() { # sets PROBE_WHY
  local url out="" hosts=() urls=()
  command -v curl >/dev/null || return 0   # cannot probe: the bounded install decides
  read -r -a urls <<<"${MESH_PLUGIN_PROBE_URLS:-https://get.pulumi.com https://api.github.com}"
  for url in "${urls[@]}"; do
    if out=$(curl --silent --show-error --output /dev/null --connect-timeout 5 --max-time 15 "$url" 2>&1); then
      return 0
    fi
    hosts+=("$(host_of "$url")")
  done
  printf -v PROBE_WHY '%s and ' "${hosts[@]}"
  PROBE_WHY="${PROBE_WHY% and } unreachable: $out"
  return 1
}

try_plugin_install() { # try_plugin_install NAME: the SDK's version into PULUMI_HOME; else PLUGIN_WHY
  local name=$1 ver=${SDK_VERSION[$1]} out rc=0 limit=${MESH_PLUGIN_INSTALL_TIMEOUT:-60}
  say "trying pulumi plugin install resource $name $ver (at most ${limit} s)"
  out=$(PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true \
    timeout "$limit" "$PULUMI_CLI" plugin install resource "$name" "$ver" 2>&1) || rc=$?
  printf '%s\n' "$out" >>"$LOGS/plugins.log"
  if ((rc == 0)) && plugin_installed "$name" "$ver"; then return 0; fi
  if ((rc == 124)); then
    PLUGIN_WHY="pulumi plugin install $name $ver timed out after ${limit} s"
  elif ((rc == 0)); then
    PLUGIN_WHY="pulumi plugin install $name $ver left no plugin in $PHOME/plugins"
  else
    PLUGIN_WHY="pulumi plugin install $name $ver failed: $(sed '/^[[:space:]]*$/d' <<<"$out" | tail -n 1 | cut -c1-200)"
  fi
  return 1
}

# How each plugin was got, kept so a later run neither probes nor downloads again:
# line 1 `downloaded` or `built`, line 2 why it was built.
origin_file() { echo "$ORIGINS/plugin-$1-v${SDK_VERSION[$1]}"; }
plugin_origin() { sed -n "${2:-1}p" "$(origin_file "$1")" 2>/dev/null || true; }
record_plugin() { mkdir -p "$ORIGINS" && printf '%s\n%s\n' "$2" "${3:-}" >"$(origin_file "$1")"; }

built_current() { # built_current NAME: the built plugin is there, from toolchain/go/ as it is now
  local bin="${BUILT_DIR[$1]}/bin/pulumi-resource-$1"
  if [[ $1 == kubernetes ]]; then [[ -x $bin ]]; else current "$bin" "$1"; fi
}

plugin_ready() {
  case $(plugin_origin "$1") in
    downloaded) plugin_installed "$1" "${SDK_VERSION[$1]}" ;;
    built) built_current "$1" && plugin_installed "$1" "${BUILT_VERSION[$1]}" ;;
    *) return 1 ;;
  esac
}

cli_built() { [[ -x "$CLI_DIR/bin/pulumi" ]] && current "$CLI_DIR/bin/pulumi-language-python" langhost; }

build_plugin() { # build_plugin NAME
  case $1 in
    kubernetes) [[ -x "$K8S_DIR/bin/pulumi-resource-kubernetes" ]] \
                  || timed "kubernetes-v$PULUMI_KUBERNETES_VERSION" build_kubernetes ;;
    tls) current "$TLS_DIR/bin/pulumi-resource-tls" tls || timed "tls-v$PULUMI_TLS_VERSION" build_tls ;;
    random) current "$RANDOM_DIR/bin/pulumi-resource-random" random || timed "random-v$PULUMI_RANDOM_VERSION" build_random ;;
  esac
}

# ---------------------------------------------------------------------------------------------
print_env() {
  local path_dirs=$PULUMI_BIN_DIR name
  # Only the built plugins go on PATH: there the engine takes them for any version the SDK asks
  # for. A downloaded plugin is found in PULUMI_HOME by its exact version, and a built one on PATH
  # would win over it.
  for name in "${PLUGINS[@]}"; do
    [[ $(plugin_origin "$name") == built ]] && path_dirs+=":${BUILT_DIR[$name]}/bin"
  done
  # shellcheck disable=SC2016 # $PATH is for the shell that evals this line, not expanded here
  printf 'export PATH="%s:$PATH"; export PULUMI_HOME="%s"; export PULUMI_SKIP_UPDATE_CHECK=true\n' \
    "$path_dirs" "$PHOME"
}

status() {
  local ok name
  for p in "cli:$CLI_DIR/bin/pulumi" "langhost:$CLI_DIR/bin/pulumi-language-python" \
           "kubernetes:$K8S_DIR/bin/pulumi-resource-kubernetes" "tls:$TLS_DIR/bin/pulumi-resource-tls" \
           "random:$RANDOM_DIR/bin/pulumi-resource-random"; do
    ok=missing; [[ -x "${p#*:}" ]] && ok=ok
    printf '%-11s %-8s %s\n' "${p%%:*}" "$ok" "${p#*:}"
  done
  if official_cli; then echo "official CLI on PATH: $OFFICIAL_DIR/pulumi v$OFFICIAL_VERSION"
  else echo "official CLI on PATH: none taken ($CLI_WHY)"; fi
  for name in "${PLUGINS[@]}"; do
    printf 'plugin %-11s %s\n' "$name" "$(plugin_origin "$name" | paste -sd' ')"
  done
  if [[ -x "$CLI_DIR/bin/pulumi" ]]; then
    PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true "$CLI_DIR/bin/pulumi" plugin ls 2>&1 || true
  fi
  [[ -d "$CACHE" ]] && du -sh "$CACHE" 2>/dev/null || true
  [[ -f "$LOGS/build-times.txt" ]] && { echo "build times:"; cat "$LOGS/build-times.txt"; } || true
}

# go_for [PIECE...]: Go, if anything must be built, naming all of it: the PIECEs and each plugin
# of ensure_all's plugin_why whose build is not there yet.
go_for() {
  local name pieces=("$@")
  for name in "${!plugin_why[@]}"; do
    built_current "$name" || pieces+=("plugin $name ${BUILT_VERSION[$name]} (${plugin_why[$name]})")
  done
  if ((${#pieces[@]} && !NO_BUILD)); then find_go "${pieces[@]}"; fi
}

ensure_all() {
  local name cli_missing=0 probed=0 pending=() must=()
  local -A plugin_why=()
  if official_cli; then
    PULUMI_CLI=$OFFICIAL_DIR/pulumi PULUMI_BIN_DIR=$OFFICIAL_DIR
  else
    PULUMI_CLI=$CLI_DIR/bin/pulumi PULUMI_BIN_DIR=$CLI_DIR/bin
  fi
  for name in "${PLUGINS[@]}"; do plugin_ready "$name" || pending+=("$name"); done
  if [[ -n $OFFICIAL_DIR ]] || cli_built; then
    ((${#pending[@]})) || { report_all; return 0; }   # fast path: nothing to get, nothing to probe
  fi

  command -v python3 >/dev/null || die "python3 is needed"
  mkdir -p "$CACHE" "$LOGS" "$BUILD_ROOT" "$ORIGINS"
  exec 9>"$CACHE/.lock"
  flock 9   # one builder at a time; a second caller waits and then finds the cache filled

  # Plugins with no record yet: Pulumi's own acquisition, if its sites answer at all.
  for name in "${pending[@]}"; do
    case $(plugin_origin "$name") in
      built) plugin_why[$name]=$(plugin_origin "$name" 2) ;;   # a build of ours to redo
      *) if ((!probed)); then probed=1; plugin_sites_reachable || true; fi
         [[ -z $PROBE_WHY ]] || plugin_why[$name]=$PROBE_WHY ;;
    esac
  done

  if [[ -z $OFFICIAL_DIR ]] && ! cli_built; then must+=("the pulumi CLI v$PULUMI_VERSION ($CLI_WHY)"); fi
  go_for "${must[@]}"

  if [[ -z $OFFICIAL_DIR ]] && ! cli_built; then
    if ((NO_BUILD)); then
      WOULD[cli]=$CLI_WHY
      cli_missing=1
    else
      [[ -x "$CLI_DIR/bin/pulumi" ]] || timed "cli-v$PULUMI_VERSION" build_cli
      current "$CLI_DIR/bin/pulumi-language-python" langhost || timed "langhost-v$PULUMI_VERSION" build_langhost
      CLI_FRESH=1
    fi
  fi

  for name in "${pending[@]}"; do
    [[ -z ${plugin_why[$name]:-} ]] || continue
    if ((cli_missing)); then
      plugin_why[$name]="pulumi plugin install not tried: no CLI to run it"
    elif try_plugin_install "$name"; then
      record_plugin "$name" downloaded
      FRESH[$name]=1
    else
      plugin_why[$name]=$PLUGIN_WHY
    fi
  done

  go_for
  for name in "${PLUGINS[@]}"; do
    [[ -n ${plugin_why[$name]:-} ]] || continue
    if ! built_current "$name"; then
      if ((NO_BUILD)); then
        WOULD[$name]=${plugin_why[$name]}
        continue
      fi
      build_plugin "$name"
      FRESH[$name]=1
    fi
    ((cli_missing)) && continue   # no CLI to install it with; --no-build stops below anyway
    install_plugin "$name" "${BUILT_VERSION[$name]}" "${BUILT_DIR[$name]}/bin/pulumi-resource-$name"
    record_plugin "$name" built "${plugin_why[$name]}"
  done
  if [[ $SHOW_PLUGINS == 1 && ${#WOULD[@]} == 0 ]]; then
    PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true "$PULUMI_CLI" plugin ls >&2
  fi
  report_all
}

report_all() { # one line per piece: which way it was got ("(cached)": not in this run)
  local name cached
  if [[ -n ${WOULD[cli]:-} ]]; then
    would_build "pulumi CLI v$PULUMI_VERSION" "${WOULD[cli]}"
  elif [[ -n $OFFICIAL_DIR ]]; then
    report "pulumi CLI v$OFFICIAL_VERSION" "official, $OFFICIAL_DIR/pulumi, with its pulumi-language-python"
  else
    cached=" (cached)"; ((CLI_FRESH)) && cached=""
    report "pulumi CLI v$PULUMI_VERSION" "built from Go modules ($CLI_WHY)$cached"
    report "pulumi-language-python" "our stand-in, built from toolchain/go/langhost (the official one's Go module is not served)$cached"
  fi
  for name in "${PLUGINS[@]}"; do
    cached=" (cached)"; [[ -n ${FRESH[$name]:-} ]] && cached=""
    if [[ -n ${WOULD[$name]:-} ]]; then
      would_build "plugin $name ${BUILT_VERSION[$name]}" "${WOULD[$name]}"
      continue
    fi
    case $(plugin_origin "$name") in
      downloaded) report "plugin $name ${SDK_VERSION[$name]}" \
                    "downloaded by pulumi plugin install, from PULUMI_HOME by exact version$cached" ;;
      built) report "plugin $name" "built ${BUILT_VERSION[$name]}, on PATH ($(plugin_origin "$name" 2))$cached" ;;
      *) report "plugin $name" "not set up (--no-build, and no CLI to install it with)" ;;
    esac
  done
}

# Sourcing the file only defines the functions (handy for debugging one step).
[[ "${BASH_SOURCE[0]}" != "$0" ]] && return 0

args=("$@")
for i in "${!args[@]}"; do   # --no-build goes with any mode
  if [[ ${args[$i]} == --no-build ]]; then NO_BUILD=1; unset 'args[i]'; fi
done
set -- "${args[@]}"

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
    esac
    case $2 in kubernetes | tls | random) rm -f "$(origin_file "$2")" ;; esac ;;
  --write-src)
    out=${2:?--write-src needs a folder}
    find_go "the Go sources of --write-src (go mod edit)"
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
  env | build)
    ensure_all
    ((WOULD_BUILD)) && exit 3
    print_env ;;
esac
