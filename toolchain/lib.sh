# shellcheck shell=bash
# shellcheck disable=SC2034 # NO_BUILD, WOULD_BUILD, DOWNLOAD_ERROR: read by the scripts that source this
# Sourced by the toolchain scripts: the one way each of them says how it got a piece, the one
# download-and-verify, and the one place Go is looked for. Each piece is taken from the machine
# or downloaded where that works (a laptop) and built from Go modules only where it does not
# (a machine that reaches package registries only), so setup.sh must say which path it took.
#
#   report PIECE HOW            one line per piece on stderr (stdout carries the scripts' data);
#                               a cached piece only with MESH_TOOLCHAIN_REPORT=all
#   download_verified URL SUMS_URL FILE [NAME]
#                               0: FILE is URL's content and matches its sha256 in SUMS_URL (the
#                               line naming NAME, or the first line); 1: not reachable or not
#                               there (DOWNLOAD_ERROR says why; building is the way out);
#                               2: refused, a checksum that does not match (DOWNLOAD_ERROR)
#   need_go PIECE...            find Go and put it on PATH, or stop naming the PIECEs to build
#   would_build PIECE WHY       with --no-build: say what would be built, build nothing
#   origin_of DIR               how the binaries in DIR were got (its .origin, kept by write_origin)
#   go_source_hash DIR...       one hash of our Go under toolchain/go/DIR...: a piece built from it
#                               keeps it, and is rebuilt when it changes (a warm cache never hides
#                               an edit although the piece's version, its folder's name, is the same)

# A piece already in the cache is reported only where that is asked for (install.sh, so setup.sh
# says how every piece was got): the lab runs these scripts on every start, and a person reading
# `lab run` wants the lab's report, not the toolchain's.
report() {
  [[ $2 == *"(cached)" && ${MESH_TOOLCHAIN_REPORT:-} != all ]] && return 0
  echo "toolchain: $1: $2" >&2
}

# --no-build (toolchain/kubernetes.sh, toolchain/pulumi.sh): take what can be had without Go,
# report what would be built, and exit 3 if anything would be. Tests use it to see the fallback
# chosen without paying a cold build.
NO_BUILD=0
WOULD_BUILD=0
would_build() {
  report "$1" "would be built from Go modules ($2); not built (--no-build)"
  WOULD_BUILD=1
}

host_of() {
  local host=${1#*://}
  echo "${host%%/*}"
}

FETCH_ERROR=
fetch() { # fetch URL FILE
  local out rc=0
  if ! command -v curl >/dev/null; then
    FETCH_ERROR="curl not found"
    return 1
  fi
  # A download site this machine cannot reach must cost seconds, not minutes: fail fast on connect.
  out=$(curl --fail --silent --show-error --location --connect-timeout 5 \
    --max-time "${MESH_DOWNLOAD_MAX_TIME:-900}" --output "$2" "$1" 2>&1) || rc=$?
  ((rc == 0)) && return 0
  case $rc in
    5 | 6 | 7 | 28) FETCH_ERROR="$(host_of "$1") unreachable: ${out}" ;;
    *) FETCH_ERROR="$1: ${out}" ;;
  esac
  return 1
}

DOWNLOAD_ERROR=
download_verified() {
  local url=$1 sums_url=$2 dest=$3 name=${4:-} sums expected actual
  sums=$(mktemp)
  if ! fetch "$sums_url" "$sums"; then
    rm -f "$sums"
    DOWNLOAD_ERROR=$FETCH_ERROR
    return 1
  fi
  if [[ -n $name ]]; then
    expected=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1; exit }' "$sums")
  else
    expected=$(awk 'NR == 1 { print $1 }' "$sums")
  fi
  rm -f "$sums"
  expected=${expected,,}
  # A checksum file that names no checksum is not a network failure: refuse, as for a mismatch.
  if ! [[ $expected =~ ^[0-9a-f]{64}$ ]]; then
    DOWNLOAD_ERROR="$sums_url gives no sha256 for ${name:-$url}"
    return 2
  fi
  if ! fetch "$url" "$dest"; then
    DOWNLOAD_ERROR=$FETCH_ERROR
    return 1
  fi
  actual=$(sha256sum "$dest" | cut -d' ' -f1)
  if [[ $actual != "$expected" ]]; then
    rm -f "$dest"
    DOWNLOAD_ERROR="checksum mismatch: $url has sha256 $actual, but $sums_url says $expected"
    return 2
  fi
}

# Go is looked for only once something must be built, so a machine that could download every
# piece needs no Go at all. MESH_GO: where Go is when it is not on PATH.
need_go() {
  local go fallback=${MESH_GO:-/usr/local/go/bin/go} pieces
  printf -v pieces '%s; ' "$@"
  go=$(command -v go || true)
  if [[ -z $go && -x $fallback ]]; then go=$fallback; fi
  if [[ -z $go ]]; then
    echo "toolchain: error: no Go toolchain found (need go >= 1.25 on PATH or at $fallback):" \
      "it is needed to build ${pieces%; }" >&2
    exit 1
  fi
  PATH="$(dirname "$go"):$PATH"
  export PATH
}

write_origin() { echo "$2" >"$1/.origin"; }

# Folders from before origins were recorded were built: building was then the only path.
origin_of() { cat "$1/.origin" 2>/dev/null || echo "built from Go modules"; }

go_source_hash() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/go" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -d' ' -f1
}
