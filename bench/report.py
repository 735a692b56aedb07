"""bench/report.py: the side-by-side table of a bench/run (called by it).

Reads DIR/<server>.jsonl (one chanc-bench --json line per scenario), prints
one table (scenarios x servers, ratios chanc/node-ws and chanc/floor), writes
the whole run as JSON (--out) and the table as Markdown (--out with .md).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess

REFS = ("node-ws", "floor")


def load(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return {r["label"]: r for r in rows}


def lat(r):
    return r.get("latency_complete") if r["mode"] == "echo" and r["kind"] == "chat" else r.get("latency")


def figures(r):
    """(figure name, value or None, format, is the primary figure) for one result."""
    if r["mode"] == "storm":  # the restart storm: from the first close to all ready again
        return [("whole again after s", r["whole_after_s"] if r["whole"] else None, "%.2f", True),
                ("reconnect attempts", r["attempts"], "%d", False)]
    cpu = ("load-gen CPU % of its core", 100 * r["client_cpu_share"], "%.0f", False)
    # below ~100 % while deliveries fall behind: the server's core was shared
    srv = ("server CPU % of its core",
           100 * r["server_cpu_s"] / r["wall_s"] if r["server_cpu_s"] >= 0 and r["wall_s"] > 0 else None,
           "%.0f", False)
    if r["mode"] == "connect" and r["label"].startswith("formation"):  # one room
        n = r["conns"]
        return [("all ready after s", r["connect_s"], "%.2f", True),
                ("frames received / join", r.get("frames_in", 0) / n, "%.1f", False),
                ("bytes received / join", r.get("bytes_in", 0) / n, "%.0f", False), cpu]
    if r["mode"] == "connect":
        return [("handshakes + auth / s", r["handshakes_per_s"], "%.0f", True), cpu]
    if r["mode"] == "idle":
        return [("server RSS KiB / connection", r["server_rss_kib_per_conn"], "%.2f", True), cpu]
    per = "delivery" if r["mode"] == "fanout" else "message"
    h = lat(r) or {}
    us = r["server_cpu_us_per_delivery"]
    return [
        ("server CPU us / %s" % per, us if us >= 0 else None, "%.1f", True),
        ("achieved %s/s" % ("deliveries" if per == "delivery" else "msg"), r["rate_out_per_s"], "%.0f", False),
        ("latency p50 ms", h.get("p50_us", 0) / 1e3, "%.2f", False),
        ("latency p99 ms", h.get("p99_us", 0) / 1e3, "%.2f", False),
        ("missing / dup", "%d / %d" % (r["missing"], r["duplicated"]), "%s", False),
        srv,
        cpu,
    ]


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--servers", required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    servers = a.servers.split()
    res = {s: load(os.path.join(a.dir, s + ".jsonl")) for s in servers}
    labels = []
    for s in servers:
        labels += [l for l in res[s] if l not in labels]
    cols = servers + ["chanc/%s" % x for x in REFS if "chanc" in servers and x in servers]

    table = []
    for label in labels:
        any_r = next(res[s][label] for s in servers if label in res[s])
        for i, (name, _, fmt, primary) in enumerate(figures(any_r)):
            row = {"scenario": label, "conns": any_r["conns"], "figure": name, "primary": primary,
                   "values": {}, "client_bound": {}, "ratios": {}}
            for s in servers:
                r = res[s].get(label)
                if r is None:
                    continue
                v = figures(r)[i][1]
                row["values"][s] = v
                row["client_bound"][s] = r.get("client_bound", False)
            c = row["values"].get("chanc")
            for x in REFS if "CPU %" not in name else ():
                v = row["values"].get(x)
                if isinstance(c, (int, float)) and isinstance(v, (int, float)) and v > 0:
                    row["ratios"]["chanc/" + x] = c / v
            row["fmt"] = fmt
            table.append(row)

    def cell(row, col):
        if col in row["ratios"]:
            return "%.2f" % row["ratios"][col]
        if col not in row["values"]:
            return "n/r" if col in servers else ""
        v = row["values"][col]
        if v is None:
            return "-"
        t = row["fmt"] % v
        if row["client_bound"].get(col) and not row["figure"].startswith("load-gen"):
            t += " *"
        return t

    head = ["scenario", "figure"] + cols
    lines = []
    prev = None
    for row in table:
        scen = "%s (%d conns)" % (row["scenario"], row["conns"]) if row["scenario"] != prev else ""
        prev = row["scenario"]
        lines.append([scen, row["figure"]] + [cell(row, c) for c in cols])
    w = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    fmt_line = lambda x: "  ".join(x[i].ljust(w[i]) if i < 2 else x[i].rjust(w[i]) for i in range(len(x)))
    now = datetime.datetime.now(datetime.timezone.utc)
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    print("%s, %d CPUs: %s; server on CPU 0, load on CPU 1, %g s per scenario"
          % (now.strftime("%Y-%m-%d %H:%MZ"), os.cpu_count(), cpu_model, a.duration))
    print("latency: echo chat = send -> complete (after the commit); ping = -> pong; fanout = "
          "scheduled publish -> each delivery. server CPU from /proc/PID/stat over the measured "
          "window, divided by what was delivered (fanout: the publishers' own copies included).")
    print("* = client-bound: the load generator used > 90 % of its core; n/r = not run.")
    print(fmt_line(head))
    for x in lines:
        print(fmt_line(x))

    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in lines:
        md.append("| " + " | ".join(v.replace("|", "/") for v in x) + " |")
    with open(os.path.splitext(a.out)[0] + "-table.md", "w") as f:
        f.write("\n".join(md) + "\n")

    versions = {"node": version(["node", "--version"])}
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "ref/node-ws/node_modules/ws/package.json")) as f:
            versions["ws"] = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        import channels
        import daphne
        import django

        versions.update(daphne=daphne.__version__, channels=channels.__version__,
                        django=django.get_version())
    except ImportError:
        pass
    for row in table:
        del row["fmt"]
    with open(a.out, "w") as f:
        json.dump({"date": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": " ".join(platform.uname()[:3]),
                   "cpu_model": cpu_model, "cpus": os.cpu_count(), "duration_s": a.duration,
                   "servers": servers, "versions": versions, "table": table,
                   "results": {s: list(res[s].values()) for s in servers}}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
