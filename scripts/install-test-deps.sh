#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages: a real Prometheus and promtool, a real SMTP server
# (aiosmtpd), the time zone database, the reference OpenMetrics parser (python3-prometheus-client), Alertmanager and
# Chromium (the status page is checked in a real headless browser), and Node.js with npm to install
# playwright-core from npm into tests/e2e/browser/node_modules (it drives that Chromium at a laptop's and a phone's
# width). Idempotent: it only calls apt-get and npm when something is missing, and it fails loudly when it cannot
# install.
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1 || need+=(python3-prometheus-client)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# scripts/make-test-cert.sh, which a test runs.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The report's schedules are read in IANA time zones.
[ -e /usr/share/zoneinfo/Europe/Berlin ] || need+=(tzdata)

# The Playwright driver, at the version package-lock.json pins, in a folder of the project's own (not global).
driver="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/browser"
install_driver() {
  if [ ! -f "$driver/node_modules/playwright-core/package.json" ]; then
    echo "installing playwright-core into $driver/node_modules" >&2
    (cd "$driver" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  install_driver
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing test dependencies: ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps the install small; the packages run fine without their recommends.
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
# Debian starts the services it installs where systemd runs; the tests start their own instances on free ports.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  (command -v systemctl >/dev/null 2>&1 && systemctl stop "$svc") >/dev/null 2>&1 || true
done
install_driver
