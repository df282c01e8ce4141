#!/usr/bin/env bash
# Prepares a pair of nodes on two hosts (and optionally a witness on a third), on the machine that
# keeps the cluster's authority: creates the authority, issues each host's certificate bundle into a
# directory of its own, and writes beside it the command that starts the node (or the witness) there.
# Copy each directory to its host (scp -rp), then run its start.sh there. See docs/security.md.
#
# Usage: scripts/pair-hosts.sh --out DIR --node NAME=HOST:PORT --node NAME=HOST:PORT
#                              [--witness HOST:PORT] [--encryption auto|tls|off] [--dedicated-link]
#   --out DIR          where to put the authority (DIR/ca: keep ca-key.pem off the nodes) and the
#                      directories to copy: DIR/NAME for each node, DIR/witness, DIR/admin
#   --node NAME=HOST:PORT  a node and the address its peer link uses on its host. The first node
#                      dials the second, which listens on its HOST:PORT (use 0.0.0.0 to listen on
#                      every address; the certificate then names the host as given with --node)
#   --witness HOST:PORT    also a witness, listening there (HTTPS, mutual TLS)
#   --encryption MODE  the peer link's encryption: auto (default: on unless the addresses are
#                      loopback), tls, or off (with --dedicated-link only, on a back-to-back cable)
#   --dedicated-link   the peer addresses are a dedicated cable between the two hosts
# Environment: REPLICATOR, the command the start scripts run (default: replicator on PATH).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
replicator() {
  if [[ -n "${REPLICATOR:-}" ]]; then
    # shellcheck disable=SC2086 # REPLICATOR may be a command with arguments (dotnet path/replicator.dll).
    $REPLICATOR "$@"
  else
    command replicator "$@"
  fi
}

out=""
nodes=()
witness=""
encryption=auto
dedicated=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --node) nodes+=("$2"); shift 2 ;;
    --witness) witness="$2"; shift 2 ;;
    --encryption) encryption="$2"; shift 2 ;;
    --dedicated-link) dedicated=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
[[ -n "$out" && ${#nodes[@]} -eq 2 ]] || usage

# The host part of HOST:PORT ([v6]:port too), and the certificate option that names it.
host_of() { local hostport="$1"; hostport="${hostport%:*}"; hostport="${hostport#[}"; echo "${hostport%]}"; }
name_option() {
  if [[ "$1" =~ ^[0-9.]+$ || "$1" == *:* ]]; then echo "--ip"; else echo "--dns"; fi
}

mkdir -p "$out"
out="$(cd "$out" && pwd)"
replicator cert ca --out "$out/ca" >/dev/null
declare -a names addresses ids
for spec in "${nodes[@]}"; do
  name="${spec%%=*}"
  address="${spec#*=}"
  host="$(host_of "$address")"
  options=()
  if [[ "$host" != 0.0.0.0 && "$host" != :: ]]; then options=("$(name_option "$host")" "$host"); fi
  id="$(replicator cert issue node --ca "$out/ca" --name "$name" --out "$out/$name/tls" "${options[@]}" --json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  names+=("$name")
  addresses+=("$address")
  ids+=("$id")
done
replicator cert issue admin --ca "$out/ca" --name admin --out "$out/admin" >/dev/null
if [[ -n "$witness" ]]; then
  whost="$(host_of "$witness")"
  replicator cert issue witness --ca "$out/ca" --name witness --out "$out/witness/tls" "$(name_option "$whost")" "$whost" >/dev/null
  printf '%s\n' --dir . --listen "$witness" >"$out/witness/witness.args"
fi

# Each node's start: its peer (name, id, and how to reach it), the witness, the encryption.
for i in 0 1; do
  other=$((1 - i))
  args=(--peer-name "${names[$other]}" --peer-id "${ids[$other]}" --peer-encryption "$encryption")
  if [[ $i -eq 0 ]]; then args+=(--peer-address "${addresses[$other]}"); else args+=(--peer-listen "${addresses[$i]}"); fi
  if [[ -n "$dedicated" ]]; then args+=(--dedicated-link); fi
  if [[ -n "$witness" ]]; then args+=(--witness "$witness"); fi
  printf '%s\n' "${args[@]}" >"$out/${names[$i]}/node-run.args"
done

# The start script of each directory: runs the node (or the witness) from there; options given to it
# are passed on (--nbd-listen, --admin-listen, --pool-size, say).
write_start() {
  local dir="$1" launch="$2"
  cat >"$out/$dir/start.sh" <<SCRIPT
#!/usr/bin/env bash
# Starts ${dir} on its host, from the directory this script is in (its data directory).
set -euo pipefail
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
cd "\$here"
${launch}
if [[ -n "\${REPLICATOR:-}" ]]; then exec \$REPLICATOR "\$@"; else exec replicator "\$@"; fi
SCRIPT
  chmod 755 "$out/$dir/start.sh"
}
for name in "${names[@]}"; do
  write_start "$name" 'mapfile -t args <node-run.args; set -- node run --dir "$here" "${args[@]}" "$@"'
done
if [[ -n "$witness" ]]; then
  write_start witness 'mapfile -t args <witness.args; set -- witness "${args[@]}" "$@"'
fi

echo "authority: $out/ca (keep ca-key.pem on this machine, or offline)"
for i in 0 1; do
  echo "node ${names[$i]} (id ${ids[$i]}): copy $out/${names[$i]} to its host (scp -rp), then run start.sh there"
done
if [[ -n "$witness" ]]; then echo "witness: copy $out/witness to its host, then run start.sh there"; fi
echo "administrator's certificate: $out/admin"
