"""Writes the figures of a --long soak into docs/benchmarks.md, between two markers (replaced on every
run, so the file holds the latest long run)."""
import datetime
import os
import platform

BEGIN = "<!-- cluster-soak:begin (tests/cluster/soak.py --long writes this section) -->"
END = "<!-- cluster-soak:end -->"


def _fmt(v):
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def section(soak):
    f = soak.figures
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [BEGIN, "", "## Cluster soak (tests/cluster)", "",
             f"`tests/cluster/soak.py --long`: {soak.n} agents with every plugin in network namespaces, real "
             f"nats-server, fake LLM; {f.get('fault_rounds')} fault rounds in {f.get('elapsed_s')} s "
             f"({now}, {platform.machine()}, {os.cpu_count()} cores, shared with other work).", "",
             "| Figure | Value | Target |", "|---|---|---|",
             f"| RSS per agent, idle, default timings (MiB) | {_fmt(f.get('rss_idle_default_mib'))} | <= 25 |",
             f"| PSS per agent, idle, default timings (MiB) | {_fmt(f.get('pss_idle_default_mib'))} | |",
             f"| CPU per agent, idle, default timings (% of a core) | {_fmt(f.get('cpu_idle_default_pct'))} | <= 2 |",
             f"| RSS per agent, idle, test timings (MiB) | {_fmt(f.get('rss_idle_mib'))} | |",
             f"| RSS per agent, under load (MiB) | {_fmt(f.get('rss_load_mib'))} | <= 25 |",
             f"| CPU per agent, idle, test timings (% of a core) | {_fmt(f.get('cpu_idle_pct'))} | |",
             f"| RSS / anonymous per agent after the faults (MiB) | {_fmt(f.get('rss_after_faults_mib'))} / "
             f"{_fmt(f.get('anon_after_faults_mib'))} | |",
             f"| CPU per agent, under load (% of a core) | {_fmt(f.get('cpu_load_pct'))} | |",
             f"| RSS growth over the run (MiB) | {_fmt(f.get('rss_growth_mib'))} | bounded |",
             f"| pubsub publications/s (4 clients) | {f.get('pubsub_publish_per_s')} | |",
             f"| pubsub deliveries/s, all subscribers | {f.get('pubsub_deliveries_per_s')} | |",
             f"| DHT get (ms) | {_fmt(f.get('dht_get_ms'))} | |",
             f"| admin failover after kill -9 (s) | {_fmt(f.get('admin_failover_s'))} | |",
             f"| partition: majority elects (s) | {_fmt(f.get('partition_majority_admin_s'))} | |",
             f"| heal: one admin (s) | {_fmt(f.get('heal_to_one_admin_s'))} | |",
             f"| agent restart to healthy (s) | {_fmt(f.get('restart_to_healthy_s'))} | |",
             f"| NATS restart to all healthy (s) | {_fmt(f.get('nats_restart_to_healthy_s'))} | |",
             f"| all healthy after the last fault (s) | {f.get('healthy_after_last_fault_s')} | <= 30 |", "",
             "Invariants:", ""]
    for k, v in soak.invariants.items():
        state = "held" if v["held"] else "not checked" if v["held"] is None else "**violated**"
        lines.append(f"- {k}: {state}" + (f" ({v['detail'][:300]})" if v["detail"] else ""))
    lines += ["", END]
    return "\n".join(lines)


def write(soak):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
                        "benchmarks.md")
    with open(path) as fh:
        text = fh.read()
    new = section(soak)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + new + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    with open(path, "w") as fh:
        fh.write(text)
    print(f"wrote the figures into {path}")
