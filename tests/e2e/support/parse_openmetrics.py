"""Parses an OpenMetrics exposition from stdin with the reference parser (python3-prometheus-client) and prints
the families as JSON, so Rust tests can assert on what an independent parser saw. With `--text` it reads the
classic text format with that library's text parser instead. Exits non-zero, with the parser's error on stderr, if
the exposition is invalid."""
import io
import json
import sys

if sys.argv[1:] == ["--text"]:
    from prometheus_client.parser import text_string_to_metric_families
else:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

# Read as a file opened in text mode reads (universal newlines), which is how an exposition saved by curl or a
# textfile collector is read: a raw carriage return there ends the line, so a label value holding one breaks the
# parse, while a plain binary read would let it through.
text = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8").read()
families = {}
for family in text_string_to_metric_families(text):
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "unit": family.unit,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
json.dump(families, sys.stdout)
