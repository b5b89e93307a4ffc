#!/usr/bin/env bash
# Writes a self-signed TLS pair and a client certificate authority for trying the web config examples, into
# DIR/tls/ (DIR defaults to examples, whose web-config.yml and web-config-mtls.yml name these files):
#   server.crt, server.key   the exporter's certificate (CN and SANs localhost and 127.0.0.1) and key
#   client-ca.crt, .key      a CA for mutual TLS (client_ca_file in web-config-mtls.yml)
#   client.crt, client.key   a client certificate that CA signed (Prometheus's tls_config.cert_file, key_file)
# For tests and trials only: the certificates last 30 days and the keys are unencrypted. Existing files are kept
# unless --force is given. Needs openssl.
#
# Usage: scripts/make-test-cert.sh [--force] [DIR]
set -euo pipefail

force=no
if [ "${1:-}" = "--force" ]; then
  force=yes
  shift
fi
dir="${1:-examples}/tls"
command -v openssl >/dev/null 2>&1 || { echo "make-test-cert.sh needs openssl (apt-get install openssl)" >&2; exit 1; }
if [ -e "$dir/server.crt" ] && [ "$force" = no ]; then
  echo "$dir/server.crt exists; pass --force to replace it" >&2
  exit 1
fi
mkdir -p "$dir"
umask 077
days=30

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=onprem-agent-exporter test client CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign" \
  -keyout "$dir/client-ca.key" -out "$dir/client-ca.crt" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=prometheus" \
  -keyout "$dir/client.key" -out "$dir/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > "$dir/client.ext"
openssl x509 -req -in "$dir/client.csr" -CA "$dir/client-ca.crt" -CAkey "$dir/client-ca.key" -CAcreateserial \
  -days "$days" -extfile "$dir/client.ext" -out "$dir/client.crt" 2>/dev/null
rm -f "$dir/client.csr" "$dir/client.ext" "$dir/client-ca.srl"
chmod 644 "$dir/server.crt" "$dir/client-ca.crt" "$dir/client.crt"

echo "wrote $dir/{server.crt,server.key,client-ca.crt,client-ca.key,client.crt,client.key} (valid $days days)"
