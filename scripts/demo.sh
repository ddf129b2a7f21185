#!/usr/bin/env bash
# The main job on the bundled example, from a fresh Debian 12 machine:
# installs dependencies, builds moat (release), validates examples/, queries the policy, and
# prints the certificate report of a certificate made here, runs egress (an allowed and a denied
# flow), then edge in front of a small app (HTTP/2, redirect, HSTS) and scans it. Loopback only.
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
cleanup

# ---- moat edge: the platform's front door, on loopback -----------------------------------------
step "moat edge on the bundled example (examples/edge.yaml) in front of a small local app"
# The example names certs/site.crt and certs/site.key next to it: made here from the demo CA, for
# *.salestim.io. The "app" is python3's http.server on 127.0.0.1:9000 serving one page.
certs=examples/certs
mkdir -p "$certs" "$demo/app"
if [ ! -f "$certs/site.crt" ]; then
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$certs/site.key" \
    -out "$demo/site.csr" -subj "/CN=app.salestim.io" 2>/dev/null
  printf 'subjectAltName=DNS:*.salestim.io,DNS:salestim.io\n' >"$demo/site.ext"
  openssl x509 -req -in "$demo/site.csr" -CA "$demo/ca.crt" -CAkey "$demo/ca.key" \
    -CAcreateserial -out "$demo/site.leaf.crt" -days 90 -extfile "$demo/site.ext" 2>/dev/null
  cat "$demo/site.leaf.crt" "$demo/ca.crt" >"$certs/site.crt"
fi
echo "<h1>SalesTim app (the origin behind moat edge)</h1>" >"$demo/app/index.html"
echo ok >"$demo/app/healthz"
pids=()
python3 -m http.server 9000 --bind 127.0.0.1 --directory "$demo/app" >/dev/null 2>&1 &
pids+=($!)
$moat edge --config examples/edge.yaml >"$demo/edge-access.jsonl" 2>"$demo/edge.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q "ready" "$demo/edge.log" && (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break
  sleep 0.1
done
cat "$demo/edge.log"
resolve=(--resolve app.salestim.io:8443:127.0.0.1 --resolve app.salestim.io:8080:127.0.0.1)
echo "\$ curl --http2 --cacert ca.crt https://app.salestim.io:8443/"
curl -sS --http2 "${resolve[@]}" --cacert "$demo/ca.crt" -D - https://app.salestim.io:8443/
echo "\$ curl http://app.salestim.io:8080/pricing?plan=team   (the HTTP listener only redirects)"
curl -sS "${resolve[@]}" -D - -o /dev/null "http://app.salestim.io:8080/pricing?plan=team"
echo "\$ curl http://127.0.0.1:9191/healthz   (admin listener)"
curl -sS http://127.0.0.1:9191/healthz; echo
echo "access records ($demo/edge-access.jsonl):"
for _ in $(seq 50); do [ "$(wc -l <"$demo/edge-access.jsonl")" -ge 2 ] && break; sleep 0.1; done
python3 -m json.tool --json-lines --compact "$demo/edge-access.jsonl" 2>/dev/null || cat "$demo/edge-access.jsonl"

step "moat cert verify of the live edge against the policy: the demo key is not the pinned one"
$moat cert verify app.salestim.io:8443 --connect 127.0.0.1 --policy examples/salestim.yaml \
  || echo "(exit $?: as expected, the demo certificate's key is not the key the page publishes)"
step "moat scan of the demo edge: a TLS audit and grade in a fraction of a second"
echo "\$ moat scan app.salestim.io:8443 --connect 127.0.0.1 --ca ca.crt"
# (A scan opens ~40 handshakes at once: the edge's per-client handshake budget lets it through.)
$moat scan app.salestim.io:8443 --connect 127.0.0.1 --ca "$demo/ca.crt" || true
