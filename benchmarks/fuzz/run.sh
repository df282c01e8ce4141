#!/usr/bin/env bash
# Fuzzes one protocol parser with afl++ (Debian's afl++ package) and SharpFuzz: builds the harness, instruments
# Replicator.Protocol.dll, writes the seed corpus from the tests' sample messages, runs afl-fuzz for a set time,
# then replays every crash it saved and prints the totals. See README.md next to this script.
#
#   benchmarks/fuzz/run.sh nbd-session                 # 10 minutes
#   benchmarks/fuzz/run.sh peer-handshake --minutes 60
#   benchmarks/fuzz/run.sh --list
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${FUZZ_DIR:-$root/.build/fuzz}"
sharpfuzz_version=2.3.0

target=""
minutes=10
resume=0
while (($#)); do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --resume) resume=1; shift ;;
    --list) target="--list"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) target="$1"; shift ;;
  esac
done

command -v afl-fuzz >/dev/null || { echo "afl-fuzz is missing: apt-get install afl++" >&2; exit 1; }

echo "building the harness into $work/bin"
rm -rf "$work/bin"
dotnet publish "$here/Replicator.Fuzz/Replicator.Fuzz.csproj" -c Release -nologo -v quiet -o "$work/bin" >/dev/null
harness=(dotnet "$work/bin/Replicator.Fuzz.dll")
if [ "$target" = "--list" ] || [ -z "$target" ]; then
  "${harness[@]}" list
  [ -n "$target" ] || { echo "name a target" >&2; exit 2; }
  exit 0
fi
"${harness[@]}" list | grep -qx "$target" || { echo "no target '$target'; targets: $("${harness[@]}" list | tr '\n' ' ')" >&2; exit 2; }

"${harness[@]}" seeds "$work/seeds"

# SharpFuzz's instrumenter, as a local tool in the work directory (not a global install). The instrumented copy
# runs only under afl-fuzz (it writes to afl's shared memory); seeds and replays use the plain one.
if [ ! -x "$work/tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version "$sharpfuzz_version" --tool-path "$work/tools" >/dev/null
fi
rm -rf "$work/afl-bin"
cp -r "$work/bin" "$work/afl-bin"
"$work/tools/sharpfuzz" "$work/afl-bin/Replicator.Protocol.dll"
findings="$work/findings/$target"
input=(-i "$work/seeds/$target")
if ((resume)) && [ -d "$findings/default" ]; then
  input=(-i -)
else
  rm -rf "$findings"
fi
mkdir -p "$(dirname "$findings")"

# The .NET runtime is not an afl-instrumented binary, leaves core dumps to the system, and shares a busy machine.
export AFL_SKIP_BIN_CHECK=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1 AFL_IGNORE_PROBLEMS=1
echo "fuzzing $target for $minutes minutes; findings in $findings"
timeout --foreground $((minutes * 60 + 120)) \
  afl-fuzz "${input[@]}" -o "$findings" -t 10000 -m none -V $((minutes * 60)) -- dotnet "$work/afl-bin/Replicator.Fuzz.dll" "$target" \
  >"$work/$target.afl.log" 2>&1 || { echo "afl-fuzz failed; the end of its log:" >&2; tail -n 30 "$work/$target.afl.log" >&2; exit 1; }

stats="$findings/default/fuzzer_stats"
value() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
crashes=("$findings"/default/crashes/id:*)
hangs=("$findings"/default/hangs/id:*)
[ -e "${crashes[0]}" ] || crashes=()
[ -e "${hangs[0]}" ] || hangs=()
echo "target $target: $(value execs_done) inputs executed in $(value run_time) s ($(value execs_per_sec) per second)," \
  "$(value corpus_count) in the corpus, $(value saved_crashes) crashes, $(value saved_hangs) hangs"
if ((${#crashes[@]})); then
  echo "replaying the crashes:"
  "${harness[@]}" replay "$target" "${crashes[@]}" || true
  exit 1
fi
