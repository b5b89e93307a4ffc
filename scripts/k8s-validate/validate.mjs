// Validates Prometheus Operator resources against the operator's CRD schemas, offline, with the schemas that
// @kubernetes-models/prometheus-operator ships (generated from the operator's CRDs).
//
// Usage: node validate.mjs < resources.json
// where resources.json is a JSON array of resources (the Rust tests convert `kubectl kustomize` output to JSON, so
// no YAML parser is needed here). Every resource must be a monitoring.coreos.com/v1 ServiceMonitor, PodMonitor or
// PrometheusRule; anything else is refused, so a resource is never waved through unchecked. Prints one line per
// resource and exits 1 if any fails (or none is given).
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const KINDS = { ServiceMonitor, PodMonitor, PrometheusRule };

const resources = JSON.parse(readFileSync(0, "utf8"));
if (!Array.isArray(resources) || resources.length === 0) {
  console.error("expected a non-empty JSON array of resources on standard input");
  process.exit(1);
}

let failed = 0;
for (const resource of resources) {
  const what = `${resource?.apiVersion}/${resource?.kind} ${resource?.metadata?.name}`;
  const Model = KINDS[resource?.kind];
  if (resource?.apiVersion !== "monitoring.coreos.com/v1" || Model === undefined) {
    console.log(`FAIL ${what}: not a monitoring.coreos.com/v1 ${Object.keys(KINDS).join(", ")}`);
    failed += 1;
    continue;
  }
  try {
    new Model(resource).validate();
    console.log(`ok   ${what}`);
  } catch (error) {
    const details = error?.errors ? JSON.stringify(error.errors, null, 2) : "";
    console.log(`FAIL ${what}: ${error?.message ?? error}\n${details}`);
    failed += 1;
  }
}
process.exit(failed === 0 ? 0 : 1);
