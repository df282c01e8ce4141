#!/usr/bin/env bash
# The chaos soak (issue 13): cluster up with a witness, relays on its links and node b's pool on a small
# loop-mounted ext4, fio through the gateway, and one random fault after another for the given time:
# kill -9 of a node, the gateway or the witness, peer link cuts and flaps, node b's pool file system
# filling up, SIGSTOP of a node. After each, it waits until both replicas are in sync; at the end it
# reads back every region the client had acknowledged (through the gateway and from each node) and runs
# replicator verify. Prints the table; exits non-zero when a write was lost or the replicas differ.
#
#   benchmarks/chaos/run.sh [SECONDS=600] [SEED]      (as root: it mounts a loop file system)
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
seconds=${1:-600}
report=${REPLICATOR_CHAOS_REPORT:-$PWD/.build/chaos-$(date +%Y%m%d-%H%M%S).md}
mkdir -p "$(dirname "$report")"
export REPLICATOR_CHAOS_SECONDS=$seconds REPLICATOR_CHAOS_REPORT=$report
[ -n "${2:-}" ] && export REPLICATOR_CHAOS_SEED=$2
dotnet build Replicator.sln -c Release -nologo -clp:ErrorsOnly
status=0
dotnet test tests/Replicator.IntegrationTests -c Release --no-build -nologo \
  --filter "FullyQualifiedName~ChaosSoakTests" \
  --blame-hang-timeout $((seconds + 900))s >"${report%.md}.log" 2>&1 || status=$?
if [ -f "$report" ]; then cat "$report"; else tail -50 "${report%.md}.log"; fi
echo "report: $report (test output: ${report%.md}.log)"
exit $status
