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
#   toolchain/pulumi.sh --help
#
# What is built, and how (details under "Pins" below):
#  * pulumi CLI: github.com/pulumi/pulumi/pkg/v3/cmd/pulumi, with the sdk/v3 module laid out
#    beside it (pkg/go.mod replaces sdk/v3 => ../sdk), version-stamped.
#  * pulumi-language-python: the proxy does not serve the untagged module
#    github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 (403 "This module version
#    is not available" for every query), so a small stand-in language host written here (below,
#    generated into the build dir) is built against sdk/v3. It runs programs through the official
#    pulumi-language-python-exec script from the sdk/v3 zip and resolves Python with sdk/v3's
#    python/toolchain package (virtualenv / pip / uv / poetry options).
#  * pulumi-resource-kubernetes: provider/v4 module at the pseudo-version the proxy serves
#    (commit f47bc2d6f199, 2026-01-15 = PyPI pulumi-kubernetes 4.25.0a1768448096), with
#    sdk/v4 laid out beside it (provider/go.mod replaces sdk/v4 => ../sdk).
#  * pulumi-resource-tls / pulumi-resource-random: the proxy serves no version at all of
#    github.com/pulumi/pulumi-tls/provider/v5 or github.com/pulumi/pulumi-random/provider/v4.
#    They are Terraform-bridged providers, so the same thing is assembled here from modules the
#    proxy does serve: the upstream Terraform provider (through a generated `shim` module, which
#    may import its internal/provider package), pulumi-terraform-bridge's plugin-framework
#    bridge, and a small generated ProviderInfo with the same token mapping
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
  TLS_UPSTREAM_MODULE TLS_UPSTREAM_MODVER RANDOM_UPSTREAM_MODULE RANDOM_UPSTREAM_MODVER

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
write_langhost_src() { # write_langhost_src DIR
  cat >"$1/go.mod" <<EOF
module mesh.local/pulumi-language-python

go 1.25

require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
EOF
  cat >"$1/main.go" <<'EOF'
// pulumi-language-python stand-in, generated by toolchain/pulumi.sh.
//
// The Go module proxy reachable here does not serve the untagged module
// github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3, so this small language
// host is built instead. It speaks the LanguageRuntime gRPC protocol of sdk/v3 and runs Python
// programs through the official `pulumi-language-python-exec` script (from the sdk/v3 module,
// placed next to this binary), resolving the interpreter with sdk/v3's python/toolchain package
// (the `virtualenv` and `toolchain` runtime options of Pulumi.yaml).
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// Version is stamped at build time with -ldflags "-X main.Version=...".
var Version = "3.0.0"

// Exit code with which pulumi-language-python-exec says it already reported the error.
const bailExitCode = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	mu         sync.Mutex
	engineAddr string
	execScript string
}

func main() {
	var engineAddr string
	// The engine passes its address as the last positional argument; flags that other engine
	// versions pass (-root, -tracing, -virtualenv, ...) are accepted and ignored.
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-") {
			engineAddr = a
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot find own path: %v\n", err)
		os.Exit(1)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	execScript := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(execScript); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python-exec not found next to %s\n", self)
		os.Exit(1)
	}
	h := &host{engineAddr: engineAddr, execScript: execScript}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "could not start language host RPC server: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "language host RPC stopped serving: %v\n", err)
		os.Exit(1)
	}
}

func optString(opts *structpb.Struct, key string) string {
	if opts == nil {
		return ""
	}
	if v, ok := opts.Fields[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func resolve(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, errors.New("missing program info")
	}
	o := toolchain.PythonOptions{
		Root:       info.RootDirectory,
		ProgramDir: info.ProgramDirectory,
		Virtualenv: optString(info.Options, "virtualenv"),
	}
	switch strings.ToLower(optString(info.Options, "toolchain")) {
	case "", "auto":
		o.Toolchain = toolchain.Auto
	case "pip":
		o.Toolchain = toolchain.Pip
	case "uv":
		o.Toolchain = toolchain.Uv
	case "poetry":
		o.Toolchain = toolchain.Poetry
	default:
		return nil, fmt.Errorf("unsupported python toolchain %q", optString(info.Options, "toolchain"))
	}
	return toolchain.ResolveToolchain(o)
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.EngineAddress != "" {
		h.engineAddr = req.EngineAddress
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(ctx context.Context, _ *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

// pluginScan prints the pulumi-plugin.json of every installed Python distribution that has one.
const pluginScan = `
import json, sys
try:
    from importlib import metadata
except ImportError:
    print("[]"); sys.exit(0)
out = []
for dist in metadata.distributions():
    for f in (dist.files or []):
        if f.name == "pulumi-plugin.json" and len(f.parts) == 2:
            try:
                d = json.loads(f.read_text())
            except Exception:
                continue
            if d.get("resource"):
                out.append(d)
print(json.dumps(out))
`

type pluginJSON struct {
	Resource         bool   `json:"resource"`
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   string `json:"value"`
	} `json:"parameterization"`
}

func (h *host) scanPackages(ctx context.Context, info *pulumirpc.ProgramInfo) ([]*pulumirpc.PackageDependency, error) {
	tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", pluginScan)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.ProgramDirectory
	out, err := cmd.Output()
	if err != nil {
		// Not fatal: the engine loads providers on demand when resources are registered.
		fmt.Fprintf(os.Stderr, "warning: could not list python packages: %v\n", err)
		return nil, nil
	}
	var found []pluginJSON
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, nil
	}
	var deps []*pulumirpc.PackageDependency
	for _, p := range found {
		if p.Name == "" {
			continue
		}
		v := p.Version
		if v != "" && !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		d := &pulumirpc.PackageDependency{Kind: "resource", Name: p.Name, Version: v, Server: p.Server}
		if p.Parameterization != nil {
			val, _ := base64.StdEncoding.DecodeString(p.Parameterization.Value)
			d.Parameterization = &pulumirpc.PackageParameterization{
				Name: p.Parameterization.Name, Version: p.Parameterization.Version, Value: val,
			}
		}
		deps = append(deps, d)
	}
	return deps, nil
}

func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := h.scanPackages(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := h.scanPackages(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	var plugins []*pulumirpc.PluginDependency
	for _, d := range deps {
		if d.Parameterization != nil {
			continue
		}
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.Info
	if info == nil {
		info = &pulumirpc.ProgramInfo{RootDirectory: req.Pwd, ProgramDirectory: req.Pwd, EntryPoint: req.Program}
	}
	tc, err := resolve(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	program := info.EntryPoint
	if program == "" {
		program = "."
	}
	if !filepath.IsAbs(program) {
		program = filepath.Join(info.ProgramDirectory, program)
	}
	h.mu.Lock()
	engine := h.engineAddr
	h.mu.Unlock()
	args := []string{h.execScript,
		"--monitor", req.MonitorAddress,
		"--engine", engine,
		"--project", req.Project,
		"--stack", req.Stack,
		"--pwd", req.Pwd,
		"--dry_run", strconv.FormatBool(req.DryRun),
		"--parallel", strconv.Itoa(int(req.Parallel)),
		"--root_directory", info.RootDirectory,
	}
	if req.Organization != "" {
		args = append(args, "--organization", req.Organization)
	}
	args = append(args, program)
	args = append(args, req.Args...)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	config := req.Config
	if config == nil {
		config = map[string]string{}
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	keys := req.ConfigSecretKeys
	if keys == nil {
		keys = []string{}
	}
	secretKeys, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(cfg), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
		"PYTHONUNBUFFERED=1")
	cmd.Dir = req.Pwd
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d",
				exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf(
			"Problem executing program (could not run language executor): %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

type streamWriter struct{ send func([]byte) error }

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	tc, err := resolve(req.Info)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	send := func(out, errb []byte) error {
		mu.Lock()
		defer mu.Unlock()
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: out, Stderr: errb})
	}
	stdout := streamWriter{func(b []byte) error { return send(b, nil) }}
	stderr := streamWriter{func(b []byte) error { return send(nil, b) }}
	return tc.InstallDependencies(server.Context(), req.Info.ProgramDirectory, req.UseLanguageVersionTools,
		true, io.Writer(stdout), io.Writer(stderr))
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolve(req.Info)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: info.PythonExecutable, Version: info.PythonVersion.String()}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolve(req.Info)
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, err
	}
	var deps []*pulumirpc.DependencyInfo
	for _, p := range pkgs {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

func (h *host) RuntimeOptionsPrompts(ctx context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) Template(ctx context.Context, req *pulumirpc.TemplateRequest) (*pulumirpc.TemplateResponse, error) {
	return &pulumirpc.TemplateResponse{}, nil
}

func (h *host) Cancel(ctx context.Context, _ *pbempty.Empty) (*pbempty.Empty, error) {
	return &pbempty.Empty{}, nil
}
EOF
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
# write_bridged_src DIR NAME UPSTREAM_MODULE UPSTREAM_MODVER EXTRA_GO
write_bridged_src() {
  local d=$1 name=$2 upmod=$3 upver=$4
  mkdir -p "$d/shim" "$d/cmd/pulumi-tfgen-$name" "$d/cmd/pulumi-resource-$name" "$d/gen"
  # The shim lives under the upstream module's path so that it may import internal/provider.
  cat >"$d/shim/go.mod" <<EOF
module $upmod/shim

go 1.24

require $upmod $upver
EOF
  cat >"$d/shim/shim.go" <<EOF
// Package shim exposes the upstream provider's constructor (generated by toolchain/pulumi.sh).
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "$upmod/internal/provider"
)

func NewProvider() provider.Provider { return upstream.New() }
EOF
  cat >"$d/go.mod" <<EOF
module mesh.local/pulumi-resource-$name

go 1.25

require (
	$upmod/shim v0.0.0
	github.com/pulumi/pulumi-terraform-bridge/v3 $TF_BRIDGE_MODVER
)

replace (
	$upmod/shim => ./shim
	github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2 $TF_PLUGIN_SDK_FORK_MODVER
)
EOF
  echo '{}' >"$d/bridge-metadata.json"
  cat >"$d/provider.go" <<EOF
// Package provider maps the upstream Terraform provider to Pulumi (generated by toolchain/pulumi.sh).
package provider

import (
	"context"
	_ "embed"
	"errors"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"$upmod/shim"
)

var _ = context.Background
var _ = errors.New
var _ resource.ID

// Version is stamped at build time (-X mesh.local/pulumi-resource-$name.Version=X.Y.Z).
var Version string

//go:embed bridge-metadata.json
var metadata []byte

func Provider() tfbridge.ProviderInfo {
	if Version == "" {
		panic("provider version not stamped")
	}
	info := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(shim.NewProvider()),
		Name:         "$name",
		Version:      Version,
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		GitHubOrg:    "hashicorp",
		License:      "Apache-2.0",
		Python:       &tfbridge.PythonInfo{RespectSchemaVersion: true},
	}
$5
	return info
}
EOF
  cat >"$d/cmd/pulumi-tfgen-$name/main.go" <<EOF
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	provider "mesh.local/pulumi-resource-$name"
)

func main() { tfgen.Main("$name", provider.Provider()) }
EOF
  cat >"$d/cmd/pulumi-resource-$name/main.go" <<EOF
package main

import (
	"context"
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	provider "mesh.local/pulumi-resource-$name"
)

//go:embed schema-embed.json
var pulumiSchema []byte

func main() {
	tfbridge.Main(context.Background(), "$name", provider.Provider(),
		tfbridge.ProviderMetadata{PackageSchema: pulumiSchema})
}
EOF
  echo '{}' >"$d/cmd/pulumi-resource-$name/schema-embed.json"
}

TLS_PROVIDER_EXTRA='	info.EnableZeroDefaultSchemaVersion = true
	info.MustComputeTokens(tokens.SingleModule("tls_", "index", tokens.MakeStandard("tls")))'

RANDOM_PROVIDER_EXTRA='	info.EnableAccurateBridgePreview = true
	info.EnableRawStateDelta = true
	info.Resources = map[string]*tfbridge.ResourceInfo{
		// random_bytes has no id attribute: use its base64 value, as pulumi-random does.
		"random_bytes": {ComputeID: func(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
			b, ok := state["base64"]
			if !ok {
				return "", errors.New("no base64 property in state")
			}
			if b.IsSecret() {
				b = b.SecretValue().Element
			}
			if !b.IsString() {
				return "", errors.New("base64 property is not a string")
			}
			return resource.ID(b.StringValue()), nil
		}},
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index",
		func(module, name string) (string, error) { return tokens.MakeStandard("random")(module, "Random"+name) }))'

build_bridged() { # build_bridged NAME VERSION UPSTREAM_MODULE UPSTREAM_MODVER EXTRA FINAL_DIR
  local name=$1 ver=$2 upmod=$3 upver=$4 extra=$5 final=$6 b ld
  b=$(fresh_build_dir "$name")
  write_bridged_src "$b" "$name" "$upmod" "$upver" "$extra"
  ld="-X mesh.local/pulumi-resource-$name.Version=$ver"
  (
    cd "$b"
    run_logged go mod tidy
    # tfgen: Pulumi schema + bridge metadata from the upstream provider's schema (no network).
    run_logged go build -o "$b/gen/pulumi-tfgen-$name" -ldflags "$ld" "./cmd/pulumi-tfgen-$name"
    run_logged "$b/gen/pulumi-tfgen-$name" schema --skip-docs --skip-examples --out "$b/gen"
    cp "$b/gen/bridge-metadata.json" "$b/bridge-metadata.json"
    python3 - "$b/gen/schema.json" "$b/cmd/pulumi-resource-$name/schema-embed.json" "$ver" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["version"] = sys.argv[3]
json.dump(spec, open(sys.argv[2], "w"), separators=(",", ":"))
PY
    mkdir -p "$b/out/bin"
    run_logged go build -o "$b/out/bin/pulumi-resource-$name" -ldflags "$ld" "./cmd/pulumi-resource-$name"
    cp "$b/gen/schema.json" "$b/out/schema.json"
  )
  install_dir "$b/out" "$final"
  drop_build_dir "$name"
}

build_tls() {
  build_bridged tls "$PULUMI_TLS_VERSION" "$TLS_UPSTREAM_MODULE" "$TLS_UPSTREAM_MODVER" "$TLS_PROVIDER_EXTRA" "$TLS_DIR"
}
build_random() {
  build_bridged random "$PULUMI_RANDOM_VERSION" "$RANDOM_UPSTREAM_MODULE" "$RANDOM_UPSTREAM_MODVER" \
    "$RANDOM_PROVIDER_EXTRA" "$RANDOM_DIR"
}

# ---------------------------------------------------------------------------------------------
# 4. Plugins into PULUMI_HOME
# ---------------------------------------------------------------------------------------------
plugin_installed() { # NAME VERSION
  compgen -G "$PHOME/plugins/resource-$1-v$2/pulumi-resource-$1*" >/dev/null
}

install_plugin() { # NAME VERSION BINARY
  local name=$1 ver=$2 bin=$3
  plugin_installed "$name" "$ver" && return 0
  say "installing plugin resource $name $ver into $PHOME"
  mkdir -p "$PHOME"
  PULUMI_HOME="$PHOME" PULUMI_SKIP_UPDATE_CHECK=true \
    "$CLI_DIR/bin/pulumi" plugin install resource "$name" "$ver" --file "$bin" >>"$LOGS/plugins.log" 2>&1 \
    || { tail -n 20 "$LOGS/plugins.log" >&2; die "plugin install $name $ver failed"; }
  plugin_installed "$name" "$ver" || die "plugin $name $ver not found under $PHOME/plugins after install"
  # `plugin install --file` copies the binary: hard-link the bin-dir copy to it to halve the disk use.
  local inst="$PHOME/plugins/resource-$name-v$ver/pulumi-resource-$name"
  if [[ -f "$inst" ]] && cmp -s "$inst" "$bin"; then ln -f "$inst" "$bin" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------------------------------------
print_env() {
  # shellcheck disable=SC2016 # $PATH is for the shell that evals this line, not expanded here
  printf 'export PATH="%s:$PATH"; export PULUMI_HOME="%s"; export PULUMI_SKIP_UPDATE_CHECK=true\n' \
    "$CLI_DIR/bin" "$PHOME"
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
  [[ -x "$CLI_DIR/bin/pulumi" && -x "$CLI_DIR/bin/pulumi-language-python" ]] || missing=1
  [[ -x "$K8S_DIR/bin/pulumi-resource-kubernetes" ]] || missing=1
  [[ -x "$TLS_DIR/bin/pulumi-resource-tls" ]] || missing=1
  [[ -x "$RANDOM_DIR/bin/pulumi-resource-random" ]] || missing=1
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
  [[ -x "$CLI_DIR/bin/pulumi-language-python" ]] || timed "langhost-v$PULUMI_VERSION" build_langhost
  [[ -x "$K8S_DIR/bin/pulumi-resource-kubernetes" ]] || timed "kubernetes-v$PULUMI_KUBERNETES_VERSION" build_kubernetes
  [[ -x "$TLS_DIR/bin/pulumi-resource-tls" ]] || timed "tls-v$PULUMI_TLS_VERSION" build_tls
  [[ -x "$RANDOM_DIR/bin/pulumi-resource-random" ]] || timed "random-v$PULUMI_RANDOM_VERSION" build_random

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
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

case $MODE in
  status) status ;;
  env) ensure_all; print_env ;;
  build) ensure_all; print_env ;;
esac
