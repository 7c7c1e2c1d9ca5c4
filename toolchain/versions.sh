# shellcheck shell=bash
# Sourced by every toolchain script: the one way versions are read from toolchain/versions.env,
# the one place they are written (KEY=value lines, no quotes; `#` starts a comment line).
#
#   source "$HERE/versions.sh" KEY...   sets each KEY from versions.env, or stops the script
#                                       naming the KEY that versions.env lacks.
versions_file="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/versions.env"
for versions_key in "$@"; do
  versions_value=$(sed -n "s/^${versions_key}=//p" "$versions_file")
  if [[ -z "$versions_value" ]]; then
    echo "${versions_key} is missing from $versions_file" >&2
    exit 1
  fi
  printf -v "$versions_key" '%s' "$versions_value"
done
unset versions_key versions_value versions_file
