#!/usr/bin/env bash
# Installs what the tests need (Debian packages for the real NBD clients, fault injection (iproute2 for
# link cuts, libfiu's fiu-run for I/O errors in a running node), the small loop-mounted file systems
# that fill up for real, and the headless browser that checks the status page), then runs every test in the solution. Exits
# non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

# command -> Debian package that provides it
declare -A needs=(
  [nbdinfo]=libnbd-bin [nbdcopy]=libnbd-bin
  [qemu-io]=qemu-utils [qemu-img]=qemu-utils
  [nbdsh]=python3-libnbd
  [fio]=fio [nbdkit]=nbdkit [ip]=iproute2
  [chromium]=chromium
  [mkfs.ext4]=e2fsprogs [fallocate]=util-linux [mount]=mount
  [fiu-run]=fiu-utils [fiu-ctrl]=fiu-utils
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "installing test dependencies: $packages"
  $sudo apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $packages
fi

dotnet build Replicator.sln -c Release -nologo -clp:ErrorsOnly
dotnet test Replicator.sln -c Release --no-build -nologo \
  --logger "console;verbosity=normal" \
  --blame-hang-timeout 5m \
  --results-directory "${TEST_RESULTS:-$PWD/.build/test-results}"
