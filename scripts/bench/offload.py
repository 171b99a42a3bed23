#!/usr/bin/env python3
"""Offload replay for scripts/offload.sh (Python 3 standard library only).

  offload.py gen DIR [--urls N] [--seed S]
      write N files of 1-20 KiB (uniform sizes, seeded) as DIR/o/0 .. DIR/o/N-1

  offload.py replay BASE [--urls N] [--requests R] [--clients C] [--threads T] [--rate Q]
                         [--zipf S] [--seed S] [--timeout SECS]
      replay a Zipf(S) workload over the N URLs against BASE (http://127.0.0.1:PORT, or several
      separated by commas: requests then go round robin over them) and print one JSON object
      with what the clients saw.

The workload is fixed by the seed, so two replays (straight to the origin, then through
etagate) send the same requests in the same order. Popularity rank and file are shuffled, so
size does not follow popularity. Each request belongs to one of C simulated clients; a client
keeps what it got (URL -> ETag) and sends If-None-Match on every repeat request (a browser
revalidating on each visit). Clients are spread over T threads, each thread with one
keep-alive connection, paced so that all threads together send about Q requests per second.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from urllib.parse import urlparse


def gen(args):
    rng = random.Random(args.seed)
    d = os.path.join(args.dir, "o")
    os.makedirs(d, exist_ok=True)
    total = 0
    for i in range(args.urls):
        size = rng.randint(1024, 20 * 1024)
        with open(os.path.join(d, str(i)), "wb") as f:
            f.write(os.urandom(size))
        total += size
    print(json.dumps({"files": args.urls, "bytes": total}))


def workload(args):
    rng = random.Random(args.seed)
    order = list(range(args.urls))
    rng.shuffle(order)  # popularity rank k -> file order[k]
    cum, acc = [], 0.0
    for k in range(1, args.urls + 1):
        acc += 1.0 / (k ** args.zipf)
        cum.append(acc)
    ranks = rng.choices(range(args.urls), cum_weights=cum, k=args.requests)
    clients = [rng.randrange(args.clients) for _ in range(args.requests)]
    return [(c, f"/o/{order[r]}") for c, r in zip(clients, ranks)]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.conditional = 0
        self.status = {}
        self.body_bytes = 0
        self.header_bytes = 0
        self.errors = 0
        self.latency = []

    def add(self, other):
        with self.lock:
            self.requests += other.requests
            self.conditional += other.conditional
            for k, v in other.status.items():
                self.status[k] = self.status.get(k, 0) + v
            self.body_bytes += other.body_bytes
            self.header_bytes += other.header_bytes
            self.errors += other.errors
            self.latency += other.latency


def worker(bases, items, rate, deadline, timeout, total, host=None):
    """Send `items` in order, the n-th to bases[n % len(bases)] (one keep-alive connection
    per base): with several bases, requests spread round robin over them."""
    targets = [urlparse(b) for b in bases]
    conns = [None] * len(targets)
    st = Stats()
    etags = {}  # (client, url) -> ETag
    start = time.monotonic()
    for n, (client, url) in enumerate(items):
        if time.monotonic() > deadline:
            break
        if rate > 0:  # pace: the n-th request of this thread not before start + n / rate
            wait = start + n / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        headers = {"Host": host} if host else {}
        tag = etags.get((client, url))
        if tag:
            headers["If-None-Match"] = tag
            st.conditional += 1
        k = n % len(targets)
        u, conn = targets[k], conns[k]
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
                t0 = time.monotonic()
                conn.request("GET", url, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                st.latency.append(time.monotonic() - t0)
                break
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 2:
                    st.errors += 1
                    resp = None
        conns[k] = conn
        if resp is None:
            continue
        st.requests += 1
        st.status[resp.status] = st.status.get(resp.status, 0) + 1
        st.body_bytes += len(body)
        # Bytes on the wire for the head: status line, each header line, the blank line.
        st.header_bytes += len(f"HTTP/1.1 {resp.status} {resp.reason}\r\n") + 2 + sum(
            len(k) + len(v) + 4 for k, v in resp.getheaders())
        tag = resp.getheader("ETag")
        if resp.status == 200 and tag:
            etags[(client, url)] = tag
    for conn in conns:
        if conn is not None:
            conn.close()
    total.add(st)


def ideal_origin_requests(items, rate):
    """Origin requests of an ideal shared cache that honours max-age (60 s for even-numbered
    URLs, 10 s for odd ones, as scripts/offload.sh's origin sends), request i at i / rate."""
    if rate <= 0:
        return None
    fetched, n = {}, 0
    for i, (_, url) in enumerate(items):
        t = i / rate
        life = 10 if int(url.rsplit("/", 1)[1]) % 2 else 60
        if url not in fetched or t - fetched[url] >= life:
            fetched[url] = t
            n += 1
    return n


def replay(args):
    items = workload(args)
    per_thread = [[] for _ in range(args.threads)]
    for client, url in items:
        per_thread[client % args.threads].append((client, url))
    total = Stats()
    deadline = time.monotonic() + args.timeout
    t0 = time.monotonic()
    bases = args.base.split(",")
    threads = [threading.Thread(target=worker, args=(bases, its, args.rate / args.threads,
                                                     deadline, 10, total, args.host))
               for its in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat = sorted(total.latency)
    pct = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else 0
    print(json.dumps({
        "requests": total.requests,
        "planned": len(items),
        "distinct_urls": len({u for _, u in items}),
        "ideal_origin_requests": ideal_origin_requests(items, args.rate),
        "conditional_requests": total.conditional,
        "status": {str(k): v for k, v in sorted(total.status.items())},
        "n304": total.status.get(304, 0),
        "body_bytes": total.body_bytes,
        "header_bytes": total.header_bytes,
        "bytes": total.body_bytes + total.header_bytes,
        "errors": total.errors,
        "elapsed_s": round(elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "truncated": total.requests + total.errors < len(items),
    }))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--urls", type=int, default=10000)
    g.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("replay")
    r.add_argument("base")
    r.add_argument("--urls", type=int, default=10000)
    r.add_argument("--requests", type=int, default=50000)
    r.add_argument("--clients", type=int, default=200)
    r.add_argument("--threads", type=int, default=8)
    r.add_argument("--rate", type=float, default=700.0, help="requests/s, all threads (0: unpaced)")
    r.add_argument("--zipf", type=float, default=1.0)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--timeout", type=float, default=110.0, help="stop the replay after this many seconds")
    r.add_argument("--host", help="Host header to send (default: the base's host:port); several "
                   "nodes of one fleet must see one site")
    a = ap.parse_args()
    if a.cmd == "gen":
        gen(a)
    else:
        replay(a)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
