#!/usr/bin/env python3
"""Turn the raw runs of scripts/bench.sh into the printed table and docs/benchmarks.md.

Usage: report.py --results results.tsv --meta meta.tsv --out FILE

results.tsv (one line per wrk run): scenario, row, size, run, mode (main|count), requests,
duration_us, bytes, p50_us, p99_us, errors, n200, n304, nother, max RSS KiB, and the share of
the machine's CPU time that other processes used during the run (percent), and the server's
CPU time per request (µs: its process tree, user + system, over the run).
meta.tsv: key, value (machine, date, version, wrk, runs, duration, warning, check, ...).
"""
import argparse
import statistics
from collections import defaultdict

NAMES = {
    "etagate": "etagate",
    "etagate:off": "etagate, content ETags off",
    "nginx": "nginx proxy_cache",
    "varnish": "Varnish",
    "ats": "Apache Traffic Server",
    "ceiling": "nginx static (ceiling)",
}
PEERS = ["nginx", "varnish", "ats"]
ORDER = ["etagate", "etagate:off", "nginx", "varnish", "ats", "ceiling"]
SCEN = {
    "S1": "S1 cache hit, 200",
    "S2": "S2 304 from cache",
    "S3": "S3 uncacheable pass-through",
    "S4": "S4 no-store pass-through",
    "S5": "S5 no validators at origin, client revalidates",
    "S6": "S6 cache hit, compressed (Accept-Encoding: gzip, br)",
}
SIZES = ["1k", "16k", "256k"]
NOISY = 5.0  # percent of the machine's CPU used by other processes during a run
SIZE_LABEL = {"1k": "1 KiB", "16k": "16 KiB", "256k": "256 KiB"}


# etagate / best peer targets of the performance issue, by scenario and body size.
TARGET = {("S1", "1k"): 1.0, ("S1", "16k"): 1.0, ("S1", "256k"): 0.95,
          ("S2", "1k"): 1.0, ("S2", "16k"): 1.0, ("S2", "256k"): 0.95}


def load(results):
    main = defaultdict(list)
    count = {}
    for line in open(results):
        f = line.rstrip("\n").split("\t")
        if len(f) < 15:
            continue
        scen, row, size, run, mode = f[:5]
        req, dur, byt, p50, p99, err, n200, n304, noth, rss = (float(x or 0) for x in f[5:15])
        other = float(f[15]) if len(f) > 15 and f[15] else 0.0
        cpu = float(f[16]) if len(f) > 16 and f[16] else 0.0
        rec = dict(rps=req / (dur / 1e6) if dur else 0.0, p50=p50 / 1000, p99=p99 / 1000,
                   bpr=byt / req if req else 0.0, err=err, rss=rss, req=req, other=other,
                   cpu=cpu)
        if mode == "main":
            main[(scen, row, size)].append(rec)
        elif mode == "count":
            count[(scen, row, size)] = dict(n200=n200, n304=n304, nother=noth)
    agg = {}
    for k, runs in main.items():
        agg[k] = dict(
            rps=statistics.median(r["rps"] for r in runs),
            p50=statistics.median(r["p50"] for r in runs),
            p99=statistics.median(r["p99"] for r in runs),
            bpr=statistics.median(r["bpr"] for r in runs),
            rss=max(r["rss"] for r in runs),
            err=sum(r["err"] for r in runs),
            other=statistics.median(r["other"] for r in runs),
            cpu=statistics.median(r["cpu"] for r in runs),
            other_max=max(r["other"] for r in runs),
            n=len(runs),
        )
    return agg, count


def krps(x):
    return f"{x / 1000:.1f}k"


def mib(kib):
    return f"{kib / 1024:.0f} MiB" if kib else "-"


def sizes_of(agg, scen):
    return [s for s in SIZES if any(k[0] == scen and k[2] == s for k in agg)]


def rows_of(agg, scen):
    return [r for r in ORDER if any(k[0] == scen and k[1] == r for k in agg)]


def best_peer(agg, scen, size):
    cands = [(agg[(scen, p, size)]["rps"], p) for p in PEERS if (scen, p, size) in agg]
    return max(cands) if cands else None


def build(agg, count, meta):
    md, txt = [], []
    # Compact req/s matrix.
    md.append("## Requests per second (median)\n")
    md.append("| scenario | system | " + " | ".join(SIZE_LABEL[s] for s in SIZES) + " |")
    md.append("|---|---|" + "---|" * len(SIZES))
    for scen in SCEN:
        for row in rows_of(agg, scen):
            cells = [krps(agg[(scen, row, s)]["rps"]) if (scen, row, s) in agg else "" for s in SIZES]
            md.append(f"| {SCEN[scen]} | {NAMES[row]} | " + " | ".join(cells) + " |")
    md.append("")

    # Full table.
    head = ["system", "scenario", "body", "req/s", "CPU µs/req", "p50 ms", "p99 ms", "max RSS",
            "errors", "other CPU"]
    md.append("## All results\n")
    md.append("Medians over the runs; CPU µs/req is the server's CPU time (its process tree, "
              "user + system, on its own core) divided by the requests it answered, which is "
              "stable where req/s is capped by the load generator on the other core; RSS is the largest resident set (the server's whole process "
              "tree) sampled every 0.5 s during the measured runs; other CPU is the median share "
              "of the machine's CPU time used by processes outside the benchmark during a run "
              "(0% on a quiet machine).\n")
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "---|" * len(head))
    widths = [28, 48, 8, 10, 10, 8, 8, 9, 6, 9]
    txt.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for scen in SCEN:
        for size in sizes_of(agg, scen):
            for row in rows_of(agg, scen):
                a = agg.get((scen, row, size))
                if not a:
                    continue
                cells = [NAMES[row], SCEN[scen], SIZE_LABEL[size], f"{a['rps']:.0f}",
                         f"{a['cpu']:.1f}", f"{a['p50']:.2f}", f"{a['p99']:.2f}", mib(a["rss"]), f"{a['err']:.0f}",
                         f"{a['other']:.0f}%"]
                md.append("| " + " | ".join(cells) + " |")
                txt.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    md.append("")

    # etagate against the best peer.
    md.append("## etagate against the best peer\n")
    md.append("Ratio of etagate's median req/s to the best of nginx proxy_cache, Varnish and "
              "ATS in the same scenario (above 1: etagate is faster). Targets from the "
              "performance issue: S1 and S2 at least 1.0 at 1 and 16 KiB, 0.95 at 256 KiB; none "
              "for S3 against peers. [performance-notes.md](performance-notes.md) has the "
              "profiles behind the rows that miss.\n")
    md.append("| scenario | body | etagate req/s | best peer | peer req/s | ratio | target |")
    md.append("|---|---|---|---|---|---|---|")
    txt.append("")
    txt.append("etagate / best peer:")
    for scen in ("S1", "S2", "S3"):
        for size in sizes_of(agg, scen):
            e = agg.get((scen, "etagate", size))
            b = best_peer(agg, scen, size)
            if not e or not b:
                continue
            ratio = e["rps"] / b[0] if b[0] else 0
            target = TARGET.get((scen, size))
            verdict = "-" if target is None else (
                f"{target:.2f} " + ("met" if ratio >= target else "missed"))
            md.append(f"| {SCEN[scen]} | {SIZE_LABEL[size]} | {e['rps']:.0f} | {NAMES[b[1]]} | "
                      f"{b[0]:.0f} | {ratio:.2f} | {verdict} |")
            txt.append(f"  {scen} {size:>4}: etagate {e['rps']:.0f} / {NAMES[b[1]]} {b[0]:.0f} = {ratio:.2f}")
    md.append("")

    # S3 content ETags on / off.
    s3 = [(s, agg[("S3", "etagate", s)], agg[("S3", "etagate:off", s)]) for s in SIZES
          if ("S3", "etagate", s) in agg and ("S3", "etagate:off", s) in agg]
    if s3:
        md.append("## Cost of content ETags on uncacheable responses (S3)\n")
        md.append("etagate's default route buffers each `private` response whole (up to "
                  "`etag.max_buffer`, 1 MiB) and hashes it with BLAKE3 before the first byte "
                  "goes out; the `/off` route has `etag: { enabled: false }` and streams. "
                  "Target: on / off at least 0.90.\n")
        md.append("| body | ETags on req/s | ETags off req/s | on / off | p99 on | p99 off |")
        md.append("|---|---|---|---|---|---|")
        txt.append("")
        txt.append("S3 etagate content ETags on / off:")
        for s, on, off in s3:
            r = on["rps"] / off["rps"] if off["rps"] else 0
            md.append(f"| {SIZE_LABEL[s]} | {on['rps']:.0f} | {off['rps']:.0f} | {r:.2f} | "
                      f"{on['p99']:.2f} ms | {off['p99']:.2f} ms |")
            txt.append(f"  {s:>4}: on {on['rps']:.0f} / off {off['rps']:.0f} = {r:.2f}")
        md.append("")

    # S6: compressed hits.
    s6sizes = sizes_of(agg, "S6")
    if s6sizes:
        md.append("## Compressed cache hits (S6)\n")
        md.append("Text (`text/html`, this repository's docs and sources) stored in the cache, "
                  "requested with `Accept-Encoding: gzip, br`. etagate sends Brotli (level 6, "
                  "compressed once per stored response and kept); nginx `gzip on` in front of "
                  "`proxy_cache` compresses every response as it sends it (level 1, its "
                  "default); Varnish stores the gzip (`beresp.do_gzip`, level 6) and sends it. "
                  "ATS has no compression configured and is left out. Target of issue 16: "
                  "at least 1.5 times the best peer. CPU ratio: the best peer's CPU per request "
                  "divided by etagate's (above 1: etagate spends less).\n")
        md.append("| body | system | req/s | CPU µs/req | bytes/response | req/s ratio | CPU ratio |")
        md.append("|---|---|---|---|---|---|---|")
        txt.append("")
        txt.append("S6 compressed hits:")
        for size in s6sizes:
            e = agg.get(("S6", "etagate", size))
            b = best_peer(agg, "S6", size)
            peers = [r for r in rows_of(agg, "S6") if r in PEERS and ("S6", r, size) in agg]
            best_cpu = min((agg[("S6", r, size)]["cpu"] for r in peers), default=0)
            for row in rows_of(agg, "S6"):
                a = agg[("S6", row, size)]
                ratio = cpu_ratio = ""
                if row == "etagate" and b and a["cpu"]:
                    ratio = f"{a['rps'] / b[0]:.2f}"
                    cpu_ratio = f"{best_cpu / a['cpu']:.2f}"
                    txt.append(f"  {size:>4}: req/s ratio {ratio}, CPU ratio {cpu_ratio}")
                md.append(f"| {SIZE_LABEL[size]} | {NAMES[row]} | {a['rps']:.0f} | {a['cpu']:.1f} | "
                          f"{a['bpr']:.0f} | {ratio} | {cpu_ratio} |")
        md.append("")

    # S5.
    s5sizes = sizes_of(agg, "S5")
    if s5sizes:
        md.append("## Revalidation when the origin sends no validators (S5)\n")
        md.append("The origin sends `Cache-Control: max-age=3600` and neither `ETag` nor "
                  "`Last-Modified`. Every client request carries `If-None-Match` with the ETag "
                  "etagate computed. etagate answers 304; the peers have no validator to compare "
                  "and answer 200 with the body. 304 rate: statuses counted by a separate short "
                  "wrk run per system with a counting Lua `response()` hook; bytes: wrk's bytes "
                  "read (headers and bodies) per response in the measured runs.\n")
        md.append("| body | system | req/s | 304 rate | bytes per response | bytes saved by etagate |")
        md.append("|---|---|---|---|---|---|")
        txt.append("")
        txt.append("S5 (origin without validators, clients revalidate with etagate's ETag):")
        for s in s5sizes:
            e = agg.get(("S5", "etagate", s))
            for row in rows_of(agg, "S5"):
                a = agg.get(("S5", row, s))
                if not a:
                    continue
                c = count.get(("S5", row, s))
                rate = "-"
                if c:
                    tot = c["n200"] + c["n304"] + c["nother"]
                    rate = f"{100 * c['n304'] / tot:.1f}%" if tot else "-"
                saved = "-"
                if e and row != "etagate" and a["bpr"]:
                    saved = f"{100 * (1 - e['bpr'] / a['bpr']):.1f}%"
                md.append(f"| {SIZE_LABEL[s]} | {NAMES[row]} | {a['rps']:.0f} | {rate} | "
                          f"{a['bpr']:.0f} | {saved} |")
                txt.append(f"  {s:>4} {NAMES[row]:<24} {a['rps']:>8.0f} req/s  304 rate {rate:>6}  "
                           f"{a['bpr']:>8.0f} B/resp  saved by etagate {saved}")
        md.append("")
    return md, txt


METHOD = """## Method

- **Command**: `{command}` (one command: installs what is missing with
  `scripts/install-deps.sh bench`, builds with `cargo build --release --bins` unless
  `--no-build`, starts everything on 127.0.0.1, measures, writes this file). Took {elapsed} s of
  measuring ({runs} run(s) of {duration} per system, scenario and body size, after a warm-up).
- **Pinning**: each server under test runs alone on core 0 (`taskset -c 0`); wrk, the origin
  and the script itself run on core 1. Every system gets one core: etagate `server.threads: 1`,
  nginx `worker_processes 1`, ATS `exec_thread.limit 1`; Varnish keeps its default thread pools
  (thread per connection), confined to core 0 like the others.
- **Load**: `{wrk}`. The Lua script only prints a summary in `done()`; the status-counting hook
  (`response()`) is used only in the extra S5 counting runs because it slows wrk down.
  Runs are interleaved (run 1 of every system, then run 2, ...) and the median is reported.
- **Origin**: one nginx (`worker_processes 1`, sendfile, files of 1, 16 and 256 KiB in tmpfs)
  with three flavours of the same files:
  `/v/` nginx's own `ETag` and `Last-Modified` plus `Cache-Control: max-age=3600` (S1, S2);
  `/nv/` `etag off` and `add_header Last-Modified ""` (an empty `add_header` value makes nginx
  drop the header) plus `max-age=3600`: no validator at all (S5);
  `/pass/` no validators and `Cache-Control: private` (S3; `private` rather than `no-store`
  because etagate still computes a content ETag for `private` responses, which is the cost S3
  measures, while every shared cache must pass it through); `/ns/` the same with
  `Cache-Control: no-store` (S4: nothing to tag or keep, the plain pass-through).
- **Ceiling**: a second instance of the same static nginx, on core 0, measured directly.
- **Peers**: nginx `proxy_cache` (cache directory on tmpfs, upstream keepalive 64);
  Varnish `-s malloc,512m` with the builtin VCL (`-b` origin); Apache Traffic Server from a
  private runroot (generated `records.config`, `remap.config` `map / http://origin/`,
  512 MiB RAM cache, 512 MiB cache file on tmpfs); etagate with a generated config (one
  listener, one upstream, the default route plus an `/off` route with `etag.enabled: false`,
  `cache.budget: 512MiB`). **Access logs are off everywhere** (nginx `access_log off`, etagate
  `access_log.enabled: false`, ATS `logging_enabled 0`; Varnish writes only its in-memory shared
  log, as always).
- **Checks**: before measuring, each system's answer is checked with curl (status; for caches
  that hits and 304s do not reach the origin, read from the origin's `stub_status` counter;
  that pass-through does). They are listed at the end.
- **Interference**: for every run the script computes how much of the machine's CPU time
  went to processes outside the benchmark (`/proc/stat` minus the server, the origin, wrk and
  the script; 0% on a quiet machine). A run where that share exceeds 5% is measured again
  after the other runs of its scenario and body size (bursts of foreign work often pass by
  then), at most twice more and within a budget for the whole benchmark; the quietest attempt
  counts. This run repeated {retried} run(s);
  the "other CPU" column shows what remained.
- **RSS**: VmRSS of the server process and its children (nginx master and worker, Varnish
  manager and child), the max of samples every 0.5 s during the measured runs. nginx
  proxy_cache keeps cached bodies in tmpfs files (page cache, not its RSS) and ATS keeps them in
  its RAM cache (RSS): compare RSS with that in mind.
- Absolute numbers move between machines; only the side-by-side ratios of one run mean much.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    agg, count = load(a.results)
    meta = defaultdict(list)
    for line in open(a.meta):
        k, _, v = line.rstrip("\n").partition("\t")
        meta[k].append(v)

    def one(k, d=""):
        return meta[k][0] if meta.get(k) else d

    noisy = sorted((v["other"], k) for k, v in agg.items() if v["other"] > NOISY)
    if noisy:
        meta["warning"].append(
            f"in {len(noisy)} of {len(agg)} measurements other processes used more than "
            f"{NOISY:.0f}% of the machine's CPU in the median run (worst: {noisy[-1][0]:.0f}%, "
            f"{noisy[-1][1][0]} {NAMES[noisy[-1][1][1]]} {noisy[-1][1][2]}); the medians damp "
            "this, but compare those rows with care")
    md_body, txt = build(agg, count, meta)
    doc = ["# Benchmarks: etagate beside nginx, Varnish and Apache Traffic Server", ""]
    doc.append("Generated by `scripts/bench.sh`; do not edit by hand (rerun it).\n")
    doc.append(f"- Machine: {one('machine')}")
    doc.append(f"- Date: {one('date')}")
    doc.append(f"- Mode: {one('mode')}, {one('runs')} run(s) of {one('duration')} each")
    doc.append("- Versions: " + "; ".join(f"`{v}`" for v in meta.get("version", [])))
    doc.append(f"- wrk command: `{one('wrk')}`")
    doc.append("")
    doc += md_body
    doc.append(METHOD.format(command=one("command").strip(), elapsed=one("elapsed"),
                             runs=one("runs"), duration=one("duration"), wrk=one("wrk"),
                             retried=one("retried", "0")))
    warnings = meta.get("warning", [])
    doc.append("## Warnings\n")
    doc += [f"- {w}" for w in warnings] or ["None."]
    doc.append("")
    doc.append("## Checks\n")
    doc += [f"- {c}" for c in meta.get("check", [])]
    doc.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(doc))
    print("\n".join(txt))
    if warnings:
        print("\nwarnings:")
        for w in warnings:
            print("  " + w)
    print(f"\nreport written to {a.out}")


if __name__ == "__main__":
    main()
