#!/usr/bin/env bash
# The main job on the bundled example, from a fresh Debian 12 machine:
# installs dependencies, builds moat (release), validates examples/, queries the policy, and
# prints the certificate report of a certificate made here. Everything stays on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh release
moat=build/release/moat
demo=build/demo
mkdir -p "$demo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "moat policy check examples/salestim.yaml"
$moat policy check examples/salestim.yaml
step "moat egress --config examples/egress.yaml --check (the customer's gateway config)"
$moat egress --config examples/egress.yaml --check

step "moat policy check on the page as published (with its typo): rejected, with the location"
$moat policy check tests/fixtures/policy/salestim-page-typo.yaml || echo "(exit $?: as expected)"

step "moat policy match: what the customer's proxy allows, and why"
$moat policy match examples/salestim.yaml app.salestim.io
$moat policy match examples/salestim.yaml graph.microsoft.com:443
$moat policy match examples/salestim.yaml salestim.io || echo "(exit $?: *.salestim.io does not cover salestim.io)"
$moat policy match examples/salestim.yaml app.salestim.io:80 || echo "(exit $?: only port 443 is allowed)"

step "a demo certificate for *.salestim.io, made here with openssl"
if [ ! -f "$demo/demo.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$demo/demo.key" -out "$demo/demo.crt" \
    -days 365 -subj "/CN=*.salestim.io" -addext "subjectAltName=DNS:*.salestim.io,DNS:salestim.io" \
    -addext "authorityInfoAccess=caIssuers;URI:http://ca.demo.invalid/ca.crt" 2>/dev/null
fi
$moat cert show "$demo/demo.crt" --format markdown
step "its SPKI pin (what a policy lists under pins:)"
$moat cert pin "$demo/demo.crt"

# ---- moat egress: the customer's proxy, on loopback --------------------------------------------
step "moat egress on the bundled policy: an allowed and a denied flow, with their audit records"
# A stand-in for app.salestim.io: openssl s_server on 127.0.0.77:443 with a certificate from a
# demo CA. The gateway config points the name there (resolve:) and allows that one loopback
# address (allow_private:), since egress refuses private destinations by default.
origin_ip=127.0.0.77
if [ ! -f "$demo/origin.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$demo/ca.key" \
    -out "$demo/ca.crt" -days 365 -subj "/CN=moat demo CA" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$demo/origin.key" \
    -out "$demo/origin.csr" -subj "/CN=app.salestim.io" 2>/dev/null
  printf 'subjectAltName=DNS:app.salestim.io\n' >"$demo/origin.ext"
  openssl x509 -req -in "$demo/origin.csr" -CA "$demo/ca.crt" -CAkey "$demo/ca.key" \
    -CAcreateserial -out "$demo/origin.crt" -days 30 -extfile "$demo/origin.ext" 2>/dev/null
fi
cat >"$demo/egress-demo.yaml" <<YAML
moat: gateway/v1
egress:
  listen: [127.0.0.1:13128]
  policies: [$PWD/examples/salestim.yaml]
  resolve: {app.salestim.io: [$origin_ip]}
  allow_private: [$origin_ip/32]
  audit_log: $PWD/$demo/egress-audit.jsonl
YAML
: >"$demo/egress-audit.jsonl"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
openssl s_server -accept "$origin_ip:443" -cert "$demo/origin.crt" -key "$demo/origin.key" \
  -www -quiet </dev/null >/dev/null 2>&1 &
pids+=($!)
$moat egress --config "$demo/egress-demo.yaml" 2>"$demo/egress.log" &
pids+=($!)
# Readiness (bounded): moat says "ready" once it listens; the origin accepts connections.
for _ in $(seq 100); do
  grep -q "ready" "$demo/egress.log" && (exec 3<>"/dev/tcp/$origin_ip/443") 2>/dev/null && break
  sleep 0.1
done
cat "$demo/egress.log"
echo "\$ curl --proxy http://127.0.0.1:13128 --cacert ca.crt https://app.salestim.io/"
curl -sS --proxy http://127.0.0.1:13128 --cacert "$demo/ca.crt" https://app.salestim.io/ \
  -o /dev/null -w 'HTTP %{http_code} through the tunnel (allowed: *.salestim.io, port 443)\n'
echo "\$ curl --proxy http://127.0.0.1:13128 https://evil.example/"
curl -sS --proxy http://127.0.0.1:13128 https://evil.example/ -o /dev/null 2>&1 | sed 's/^/  /' || true
printf 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n' |
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/13128; cat >&3; head -c 400 <&3' | sed 's/^/  /'
echo
echo "audit records ($demo/egress-audit.jsonl):"
for _ in $(seq 50); do [ "$(wc -l <"$demo/egress-audit.jsonl")" -ge 2 ] && break; sleep 0.1; done
python3 -m json.tool --json-lines --compact "$demo/egress-audit.jsonl" 2>/dev/null || cat "$demo/egress-audit.jsonl"
