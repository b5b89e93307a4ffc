"""Parses an OpenMetrics exposition from stdin with the reference parser (python3-prometheus-client) and prints
the families as JSON, so Rust tests can assert on what an independent parser saw. With `--text` it reads the
classic text format with that library's text parser instead. Exits non-zero, with the parser's error on stderr, if
the exposition is invalid."""
import json
import sys

if sys.argv[1:] == ["--text"]:
    from prometheus_client.parser import text_string_to_metric_families
else:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
families = {}
for family in text_string_to_metric_families(text):
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "unit": family.unit,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
json.dump(families, sys.stdout)
