#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages: a real Prometheus and promtool, a real SMTP server
# (aiosmtpd), the time zone database, the reference OpenMetrics parser (python3-prometheus-client), Alertmanager and
# Chromium (the status page is checked in a real headless browser), and Node.js with npm to install
# playwright-core from npm into tests/e2e/browser/node_modules (it drives that Chromium at a laptop's and a phone's
# width). For the Kubernetes checks (tests/e2e/kubernetes.rs): into scripts/k8s-validate/ (ignored by git), the npm
# package @kubernetes-models/prometheus-operator at the version package-lock.json pins and a Python venv with
# kubernetes-validate from PyPI. `kubectl` (for `kubectl kustomize`) must be installed already: Debian's
# kubernetes-client is too old for these kustomizations. Idempotent: it only installs what is missing, and it fails
# loudly when it cannot.
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
# The Kubernetes checks: npm (which brings Node.js) and Python's venv module.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

# The project-local tools, installed after the Debian packages below.
k8s_validate="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/k8s-validate"
KUBERNETES_VALIDATE_VERSION=1.37.0
install_project_tools() {
  if ! command -v kubectl >/dev/null 2>&1 || ! kubectl kustomize --help >/dev/null 2>&1; then
    echo "kubectl with kustomize (kubectl kustomize) is required by the Kubernetes checks and was not found" >&2
    exit 1
  fi
  # npm ci installs exactly package-lock.json; it runs again when the lock changes.
  if ! cmp -s "$k8s_validate/package-lock.json" "$k8s_validate/node_modules/.installed-package-lock.json"; then
    echo "installing $k8s_validate/node_modules (npm ci)" >&2
    npm ci --prefix "$k8s_validate" --no-audit --no-fund --loglevel=error >/dev/null
    cp "$k8s_validate/package-lock.json" "$k8s_validate/node_modules/.installed-package-lock.json"
  fi
  if [ "$("$k8s_validate/.venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $k8s_validate/.venv" >&2
    /usr/bin/python3 -m venv "$k8s_validate/.venv"
    "$k8s_validate/.venv/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
}

# The Playwright driver, at the version package-lock.json pins, in a folder of the project's own (not global).
driver="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/browser"
install_driver() {
  if [ ! -f "$driver/node_modules/playwright-core/package.json" ]; then
    echo "installing playwright-core into $driver/node_modules" >&2
    (cd "$driver" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  install_project_tools
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
install_project_tools
install_driver
