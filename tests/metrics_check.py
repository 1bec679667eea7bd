#!/usr/bin/python3
"""Reads a GET /metrics answer (the file named by argv[1]) with the Prometheus
client's own parser, checks what the exposition format asks of it, and prints
its samples as one JSON object: {"name{label=value,...}": value}, labels
sorted by name (no braces without labels). Exits 1, naming the problems on
stderr, when a family lacks HELP or TYPE, a sample is given twice, or a
histogram's buckets are not cumulative up to an +Inf bucket equal to _count.

Debian's python3-prometheus-client serves /usr/bin/python3 (scripts/deps.sh)."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def key(name, labels):
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def check_histogram(fam, problems):
    series = {}
    for s in fam.samples:
        base = key(fam.name, {k: v for k, v in s.labels.items() if k != "le"})
        series.setdefault(base, {}).setdefault(s.name, []).append((s.labels.get("le"), s.value))
    for name, parts in series.items():
        buckets = parts.get(fam.name + "_bucket", [])
        count = parts.get(fam.name + "_count", [(None, None)])[0][1]
        bounds = [(math.inf if le == "+Inf" else float(le), v) for le, v in buckets]
        if not bounds or bounds[-1][0] != math.inf:
            problems.append(f"{name}: no +Inf bucket")
            continue
        if [b for b, _ in bounds] != sorted(b for b, _ in bounds):
            problems.append(f"{name}: buckets out of order")
        if any(a[1] > b[1] for a, b in zip(bounds, bounds[1:])):
            problems.append(f"{name}: buckets not cumulative")
        if count != bounds[-1][1]:
            problems.append(f"{name}: _count {count} but +Inf bucket {bounds[-1][1]}")
        if fam.name + "_sum" not in parts:
            problems.append(f"{name}: no _sum")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    problems, out = [], {}
    for fam in text_string_to_metric_families(text):
        if fam.type == "unknown":
            problems.append(f"{fam.name}: no TYPE")
        if not fam.documentation:
            problems.append(f"{fam.name}: no HELP")
        for s in fam.samples:
            k = key(s.name, s.labels)
            if k in out:
                problems.append(f"{k}: given twice")
            out[k] = s.value
        if fam.type == "histogram":
            check_histogram(fam, problems)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
