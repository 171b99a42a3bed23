#!/usr/bin/env python3
"""Soak test for scripts/soak.sh (Python 3 standard library only).

  soak.py origin --port P [--stall S] [--lifetime SECS]
      a small threaded HTTP/1.1 origin that sends no validators; what it does is chosen by the
      URL alone (deterministic): see ORIGIN below. Exits by itself after --lifetime seconds.

  soak.py drive --base URL --admin URL --pid PID --token-file F --conf LIVE --conf-a A
                --conf-b B --broken F [--broken F ...] [--minutes N] [--rate Q] ... --report FILE
      runs the mixed workload against etagate for N minutes, samples etagate's resources
      (RSS, FDs, /metrics) at the start, after a warm-up, every minute and at the end, prints a
      line per sample, writes a Markdown report and exits 0 (pass) or 1 (fail).

ORIGIN (by the first path segment; bodies are a function of the path, so a client can check them):
  /hot/I       200, 2-16 KiB, Cache-Control: public, max-age=30    (the hot set: cache hits)
  /tail/N      200, 8-48 KiB, public, max-age=600                  (the long tail: misses, eviction)
  /nc/I        200, 1-8 KiB, public, no-cache                      (every request reaches the origin)
  /slow/N      200, 32 KiB in 4 pieces 0.2 s apart                 (a slow body, within the read timeout)
  /big/I       200, 1.5 MiB, public, max-age=60                    (above max_buffer and max_object_size: streams)
  /fault/err/N       500 or 503, no-store                          (the origin fails: the client gets it as is)
  /fault/reset/N     the connection is reset (RST) before any byte  (502)
  /fault/stall/N     no answer for --stall seconds (beyond the upstream read timeout: 504)
  /fault/stallbody/N headers and 16 of 64 KiB, then --stall seconds of silence (502/504 or a cut body)
  POST anything      200 "ok", no-store (etagate invalidates what it stored for the URL)
"""
import argparse
import collections
import hashlib
import http.client
import json
import os
import platform
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

KiB = 1024
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# What the origin serves (shared by the origin and the checks of the load generator)
# ---------------------------------------------------------------------------------------------

def kind_of(path):
    parts = path.split("?", 1)[0].split("/")
    if len(parts) >= 3 and parts[1] == "fault":
        return "fault/" + parts[2]
    return parts[1] if len(parts) > 1 else ""


def size_of(path):
    k, h = kind_of(path), zlib.crc32(path.encode())
    if k == "hot":
        return 2 * KiB + h % (14 * KiB)
    if k == "tail":
        return 8 * KiB + h % (40 * KiB)
    if k == "nc":
        return 1 * KiB + h % (7 * KiB)
    if k == "slow":
        return 32 * KiB
    if k == "big":
        return 1536 * KiB
    if k == "fault/stallbody":
        return 64 * KiB
    return 0


def body_of(path):
    """The bytes the origin sends for a 200 to PATH: a 65-byte block derived from the path,
    repeated to the path's size."""
    block = hashlib.sha256(path.encode()).hexdigest().encode() + b"\n"
    n = size_of(path)
    return (block * (n // len(block) + 1))[:n]


CACHE_CONTROL = {
    "hot": "public, max-age=30",
    "tail": "public, max-age=600",
    "nc": "public, no-cache",
    "slow": "public, max-age=60",
    "big": "public, max-age=60",
    "fault/stallbody": "public, max-age=60",
}


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection from etagate's pool is dropped after this
    stall = 2.0

    def log_message(self, *args):
        pass

    def _plain(self, status, text, cache="no-store"):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _head(self, path, length):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Cache-Control", CACHE_CONTROL[kind_of(path)])
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _reset(self):
        # SO_LINGER 0: closing sends RST instead of FIN. The makefile() reader holds a
        # reference to the socket, so it must be closed too for the close to happen now.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def do_GET(self):
        path = self.path
        k = kind_of(path)
        try:
            if k in ("hot", "tail", "nc", "big"):
                body = body_of(path)
                self._head(path, len(body))
                if self.command != "HEAD":
                    self.wfile.write(body)
            elif k == "slow":
                body = body_of(path)
                self._head(path, len(body))
                if self.command != "HEAD":
                    step = len(body) // 4
                    for i in range(4):
                        if i:
                            time.sleep(0.2)
                        self.wfile.write(body[i * step:(i + 1) * step])
                        self.wfile.flush()
            elif k == "fault/err":
                n = zlib.crc32(path.encode())
                self._plain(503 if n % 2 else 500, "the origin failed on purpose\n")
            elif k == "fault/reset":
                self._reset()
            elif k == "fault/stall":
                time.sleep(self.stall)
                self._plain(200, "too late\n")
            elif k == "fault/stallbody":
                body = body_of(path)
                self._head(path, len(body))
                if self.command != "HEAD":
                    self.wfile.write(body[:16 * KiB])
                    self.wfile.flush()
                    time.sleep(self.stall)
                    self.wfile.write(body[16 * KiB:])
            else:
                self._plain(404, "not found\n")
        except OSError:
            # The other side gave up (after its read timeout): nothing more to do.
            self.close_connection = True

    do_HEAD = do_GET

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            self._plain(200, "ok\n")
        except OSError:
            self.close_connection = True


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # connections etagate dropped (after a timeout) or that were reset on purpose


def origin(args):
    OriginHandler.stall = args.stall
    srv = OriginServer(("127.0.0.1", args.port), OriginHandler)
    # Bounded: the process ends by itself even if nobody stops it.
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    print(f"soak origin listening on 127.0.0.1:{args.port}", flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------------------------------------
# The load generator
# ---------------------------------------------------------------------------------------------

# Operation -> weight. Normalised by random.choices; shares are in the report.
MIX = [
    ("hot", 400),        # GET a hot URL: mostly cache hits
    ("tail", 150),       # GET a long-tail URL: misses, stored, evicted
    ("cond", 200),       # GET with If-None-Match (the ETag got earlier): 304
    ("nc", 30),          # GET a no-cache URL (revalidated at the origin every time)
    ("head", 70),        # HEAD of a hot or tail URL
    ("post", 20),        # POST to a hot URL: invalidates it
    ("slow", 10),        # a slow body
    ("big", 5),          # a body above max_buffer and max_object_size
    ("fault/err", 30),   # origin 500/503
    ("fault/reset", 15), # origin resets the connection
    ("fault/stall", 5),  # origin silent beyond the read timeout (holds a client thread 1 s)
    ("fault/stallbody", 5),  # origin silent in the middle of the body (likewise)
]
HOT_URLS = 64
NC_URLS = 32
TAIL_SPACE = 2_000_000
BIG_URLS = 4

# What a client may see, by category. Categories whose origin misbehaves on purpose start with
# "fault/"; anything else behaves well, so any other outcome there is unexpected.
EXPECTED = {
    "hot": {"200"}, "tail": {"200"}, "nc": {"200"}, "slow": {"200"}, "big": {"200"},
    "cond/hot": {"304"}, "cond/nc": {"304"},
    "head": {"200"}, "post": {"200"},
    "fault/err": {"500", "503"},
    "fault/reset": {"502"},
    "fault/stall": {"504"},
    # The body breaks off after the headers: held back to hash, it cannot be completed (502 or
    # 504); had it been streamed, the client would see the cut (an incomplete body).
    "fault/stallbody": {"502", "504", "conn_error"},
}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()  # (category, outcome) -> n
        self.latency_max = collections.defaultdict(float)
        self.examples = {}  # (category, outcome) -> a description of the first one

    def add(self, cat, outcome, latency, example=None):
        with self.lock:
            self.outcomes[(cat, outcome)] += 1
            if latency > self.latency_max[cat]:
                self.latency_max[cat] = latency
            if example and (cat, outcome) not in self.examples:
                self.examples[(cat, outcome)] = example

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.outcomes)


def unexpected(cat, outcome):
    return outcome not in EXPECTED[cat]


def summarize(outcomes):
    """Client-side totals: requests, 5xx seen, connection errors, timeouts, unexpected."""
    s = dict(requests=0, s5xx=0, conn=0, timeout=0, unexpected=0, n304=0)
    for (cat, out), n in outcomes.items():
        s["requests"] += n
        if out.startswith("5"):
            s["s5xx"] += n
        elif out == "304":
            s["n304"] += n
        elif out == "conn_error":
            s["conn"] += n
        elif out == "timeout":
            s["timeout"] += n
        if unexpected(cat, out):
            s["unexpected"] += n
    return s


class Worker(threading.Thread):
    def __init__(self, idx, args, stats, stop, recent_tail):
        super().__init__(daemon=True, name=f"worker-{idx}")
        self.idx, self.args, self.stats, self.stop = idx, args, stats, stop
        self.rng = random.Random(args.seed * 1000 + idx)
        self.recent_tail = recent_tail
        u = urlparse(args.base)
        self.host, self.port = u.hostname, u.port
        self.conn = None
        self.etags = {}
        self.n = 0
        self.ops, self.weights = zip(*MIX)

    def request(self, method, path, headers=None, body=None):
        """(status or outcome string, response headers, body bytes)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.args.client_timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
            return str(resp.status), resp, data
        except socket.timeout:
            outcome = "timeout"
        except (OSError, http.client.HTTPException):
            outcome = "conn_error"
        self.conn.close()
        self.conn = None
        return outcome, None, b""

    def one(self):
        rng = self.rng
        op = rng.choices(self.ops, self.weights)[0]
        self.n += 1
        uniq = f"{self.idx}-{self.n}"
        method, headers, body, cat = "GET", {}, None, op
        if op == "hot":
            path = f"/hot/{rng.randrange(HOT_URLS)}"
        elif op == "tail":
            path = f"/tail/{rng.randrange(TAIL_SPACE)}"
        elif op == "nc":
            path = f"/nc/{rng.randrange(NC_URLS)}"
        elif op == "cond":
            if rng.random() < 0.6:
                path, cat = f"/hot/{rng.randrange(HOT_URLS)}", "cond/hot"
            else:
                path, cat = f"/nc/{rng.randrange(NC_URLS)}", "cond/nc"
            tag = self.etags.get(path)
            if tag:
                headers["If-None-Match"] = tag
            else:
                cat = cat.split("/")[1]  # nothing to revalidate yet: a plain GET that gets one
        elif op == "head":
            method = "HEAD"
            if rng.random() < 0.5:
                path = f"/hot/{rng.randrange(HOT_URLS)}"
            else:
                path = f"/tail/{rng.randrange(TAIL_SPACE)}"
        elif op == "post":
            method, body = "POST", b"field=value"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            path = f"/hot/{rng.randrange(HOT_URLS)}"
        elif op == "slow":
            path = f"/slow/{uniq}"
        elif op == "big":
            path = f"/big/{rng.randrange(BIG_URLS)}"
        else:
            path = f"/{op}/{uniq}"
        t0 = time.monotonic()
        out, resp, data = self.request(method, path, headers, body)
        lat = time.monotonic() - t0
        example = f"{method} {path} -> {out}"
        if out == "200" and method == "GET" and not op.startswith("fault/"):
            if data != body_of(path):
                out = "bad_body"
                example += f" (body of {len(data)} bytes, expected {size_of(path)})"
            elif op != "big":
                tag = resp.getheader("ETag")
                if not tag:
                    out = "no_etag"
                elif cat in ("hot", "nc"):
                    self.etags[path] = tag
            if op == "tail" and out == "200":
                self.recent_tail.append(path)
        self.stats.add(cat, out, lat, example)

    def run(self):
        per_thread = self.args.rate / self.args.threads
        next_t = time.monotonic() + self.rng.random() / per_thread
        while not self.stop.is_set():
            now = time.monotonic()
            if next_t > now:
                if self.stop.wait(next_t - now):
                    break
            elif now - next_t > 1.0:
                next_t = now  # fell behind (a stall): drop the backlog rather than burst
            next_t += 1.0 / per_thread
            self.one()
        if self.conn is not None:
            self.conn.close()


class Admin:
    def __init__(self, base, token):
        u = urlparse(base)
        self.host, self.port, self.token = u.hostname, u.port, token

    def call(self, method, path, body=None, auth=False, timeout=10):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def metrics(self):
        status, body = self.call("GET", "/metrics")
        if status != 200:
            raise OSError(f"/metrics answered {status}")
        m = collections.defaultdict(float)
        line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
        for line in body.decode().splitlines():
            if line.startswith("#"):
                continue
            g = line_re.match(line)
            if not g:
                continue
            name, labels, value = g.group(1), g.group(3) or "", float(g.group(4))
            m[name] += value
            for lab in re.findall(r'(\w+)="([^"]*)"', labels):
                if lab[0] in ("status_class", "result", "outcome"):
                    m[f"{name}{{{lab[0]}={lab[1]}}}"] += value
        return m


class Purger(threading.Thread):
    """Every --purge-every seconds, purges a few hot URLs and a few recently fetched tail URLs
    through POST /purge."""

    def __init__(self, args, admin, stop, recent_tail):
        super().__init__(daemon=True, name="purger")
        self.args, self.admin, self.stop, self.recent_tail = args, admin, stop, recent_tail
        self.rng = random.Random(args.seed + 7)
        self.purges = self.keys = self.variants = self.failures = 0
        self.failure_examples = []

    def run(self):
        authority = urlparse(self.args.base).netloc
        while not self.stop.wait(self.args.purge_every):
            paths = [f"/hot/{self.rng.randrange(HOT_URLS)}" for _ in range(4)]
            recent = list(self.recent_tail)
            paths += self.rng.sample(recent, min(4, len(recent)))
            body = "".join(f"http://{authority}{p}\n" for p in paths)
            try:
                status, resp = self.admin.call("POST", "/purge", body.encode(), auth=True)
                if status != 200:
                    raise OSError(f"answered {status}: {resp[:200]!r}")
                got = json.loads(resp)["urls"]
                self.purges += 1
                self.keys += len(got)
                self.variants += sum(p["entries"] for p in got)
            except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
                self.failures += 1
                if len(self.failure_examples) < 3:
                    self.failure_examples.append(str(e))


class Reloader(threading.Thread):
    """Every --reload-every seconds, puts another configuration in place and reloads it:
    A and B alternate (every third valid one by SIGHUP, the others by POST /reload); every
    fourth reload is a broken file, which must be rejected (422), after which the last valid
    file is put back."""

    def __init__(self, args, admin, stop):
        super().__init__(daemon=True, name="reloader")
        self.args, self.admin, self.stop = args, admin, stop
        self.texts = {"A": open(args.conf_a).read(), "B": open(args.conf_b).read()}
        self.broken = [open(f).read() for f in args.broken]
        self.current = "A"  # etagate started with A
        self.expected_success = self.expected_failure = 0
        self.post_applied = self.post_rejected = self.hup = 0
        self.anomalies = []  # unexpected answers, wrong generation

    def put(self, text):
        tmp = self.args.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.args.conf)

    def anomaly(self, what):
        if len(self.anomalies) < 20:
            self.anomalies.append(what)
        else:
            self.anomalies[-1] = f"... and more (last: {what})"

    def run(self):
        k = 0
        valid = 0
        while not self.stop.wait(self.args.reload_every):
            k += 1
            try:
                if k % 4 == 0:
                    self.put(self.broken[(k // 4) % len(self.broken)])
                    status, body = self.admin.call("POST", "/reload", auth=True)
                    self.put(self.texts[self.current])
                    if status == 422 and json.loads(body).get("result") == "rejected":
                        self.post_rejected += 1
                        self.expected_failure += 1
                    else:
                        self.anomaly(f"broken config: POST /reload answered {status} {body[:200]!r}")
                    continue
                valid += 1
                self.current = "B" if self.current == "A" else "A"
                self.put(self.texts[self.current])
                if valid % 3 == 0:
                    os.kill(self.args.pid, signal.SIGHUP)
                    self.hup += 1
                    self.expected_success += 1
                    continue
                status, body = self.admin.call("POST", "/reload", auth=True)
                if status == 200 and json.loads(body).get("result") == "applied":
                    self.post_applied += 1
                    self.expected_success += 1
                    gen = json.loads(body).get("generation")
                    if gen != 1 + self.expected_success:
                        self.anomaly(f"generation {gen} after {self.expected_success} successful reloads")
                else:
                    self.anomaly(f"config {self.current}: POST /reload answered {status} {body[:200]!r}")
            except (OSError, ValueError, http.client.HTTPException) as e:
                self.anomaly(f"reload {k}: {e}")


def proc_state(pid):
    """(alive, rss_kib, fds, threads)"""
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        return False, 0, 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith(("Z", "X")):
        return False, 0, 0, 0
    rss = int(fields.get("VmRSS", "0 kB").split()[0])
    threads = int(fields.get("Threads", "0").strip())
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = 0
    return True, rss, fds, threads


def fmt_bytes(n):
    return f"{n / MiB:.1f}"


def drive(args):
    token = open(args.token_file).read().strip()
    admin = Admin(args.admin, token)
    stats = Stats()
    stop = threading.Event()
    recent_tail = collections.deque(maxlen=256)
    duration = args.minutes * 60.0
    samples = []
    died = None

    def sample(label, t):
        nonlocal died
        alive, rss, fds, threads = proc_state(args.pid)
        row = dict(label=label, t=round(t), rss_kib=rss, fds=fds, threads=threads, alive=alive)
        if not alive:
            died = died or f"etagate (pid {args.pid}) was gone at {label}"
            row["metrics"] = {}
        else:
            try:
                row["metrics"] = admin.metrics()
            except (OSError, http.client.HTTPException) as e:
                died = died or f"/metrics failed at {label}: {e}"
                row["metrics"] = {}
        row["client"] = summarize(stats.snapshot())
        samples.append(row)
        print_row(row, samples)
        return row

    def print_row(row, samples):
        m, c = row["metrics"], row["client"]
        rate = ""
        if len(samples) >= 2 and row["t"] > samples[-2]["t"]:
            prev = samples[-2]
            rate = f"{(c['requests'] - prev['client']['requests']) / (row['t'] - prev['t']):.0f}"
        print(f"soak: {row['label']:>8} t={row['t']:>5}s  rss={row['rss_kib'] / 1024:6.1f}MiB fds={row['fds']:>4} "
              f"cache={fmt_bytes(m.get('etagate_cache_bytes', 0))}MiB/{m.get('etagate_cache_objects', 0):.0f}obj "
              f"evict={m.get('etagate_cache_evictions_total', 0):.0f} buf={m.get('etagate_etag_buffer_bytes', 0):.0f}B  "
              f"client req={c['requests']} ({rate or '-'}/s) 5xx={c['s5xx']} conn_err={c['conn']} timeout={c['timeout']} "
              f"unexpected={c['unexpected']}  reloads ok={m.get('etagate_config_reloads_total{result=success}', 0):.0f} "
              f"fail={m.get('etagate_config_reloads_total{result=failure}', 0):.0f}", flush=True)

    t_start = time.monotonic()
    wall_start = time.time()
    sample("start", 0)
    workers = [Worker(i, args, stats, stop, recent_tail) for i in range(args.threads)]
    purger = Purger(args, admin, stop, recent_tail)
    reloader = Reloader(args, admin, stop)
    for w in workers:
        w.start()
    purger.start()
    reloader.start()

    marks = [("warm-up", min(args.warmup, duration))]
    marks += [(f"min {i}", 60.0 * i) for i in range(1, int(args.minutes) + 1)]
    for label, at in marks:
        while not died:
            left = t_start + at - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(1.0, left))
            if not proc_state(args.pid)[0]:
                died = f"etagate (pid {args.pid}) died {time.monotonic() - t_start:.0f} s into the run"
        if died:
            break
        sample(label, time.monotonic() - t_start)
    stop.set()
    load_s = time.monotonic() - t_start
    for th in workers + [purger, reloader]:
        th.join(timeout=args.client_timeout + 5)
    stuck = [th.name for th in workers + [purger, reloader] if th.is_alive()]

    # After the load: every request has been answered; the buffer gauge must come back to 0.
    buf_zero_after = None
    end = None
    if not died:
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.settle:
            try:
                if admin.metrics().get("etagate_etag_buffer_bytes", 0) == 0:
                    buf_zero_after = time.monotonic() - t0
                    break
            except (OSError, http.client.HTTPException):
                break
            time.sleep(0.5)
        end = sample("end", time.monotonic() - t_start)

    verdict = judge(args, samples, stats, purger, reloader, died, stuck, end, buf_zero_after)
    write_report(args, samples, stats, purger, reloader, verdict, wall_start, load_s, buf_zero_after)
    print()
    for ok, name, detail in verdict:
        print(f"soak: {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    failed = [v for v in verdict if not v[0]]
    print(f"soak: verdict {'FAIL' if failed else 'PASS'}; report in {args.report}", flush=True)
    return 1 if failed else 0


# The margin of a run with fewer than 3 minute samples, as a share of the warm-up sample.
SHORT_RUN_REL = 0.5


def growth_check(name, series, labels, warm, rel, slack, unit):
    """Growth that does not level off. With 3+ minute samples: the max of the last third must
    not exceed the max of the middle third by more than a margin; with fewer, the max of the
    minute samples is compared with the warm-up sample the same way. The margin is rel times
    the warm-up sample plus slack: fixed by the size of the process under load, so that a
    leak cannot widen its own allowance."""
    k = len(series)
    if k == 0 or warm is None:
        return True, name, "not enough samples to judge"
    if k >= 3:
        a, b = k // 3, 2 * k // 3
        ref, last = max(series[a:b]), max(series[b:])
        what = (f"max of the last third ({labels[b]}..{labels[-1]}) {last:.1f}{unit} vs max of the "
                f"middle third ({labels[a]}..{labels[b - 1]}) {ref:.1f}{unit}")
    else:
        # Too short to see a plateau: in the one-hour run RSS rose from the 20 s sample (52.7
        # MiB) to its plateau (68-74 MiB) over the first 13 minutes, and a one-minute run ends
        # anywhere on that slope (58-64 MiB seen). So a short run only catches gross growth.
        rel = max(rel, SHORT_RUN_REL)
        ref, last = warm, max(series)
        what = f"max after the warm-up {last:.1f}{unit} vs warm-up sample {ref:.1f}{unit}"
    margin = warm * rel + slack
    limit = ref + margin
    return last <= limit, name, (f"{what}; limit {limit:.1f}{unit} (+{margin:.1f}{unit}: "
                                 f"{rel * 100:.0f}% of the warm-up sample + {slack:g}{unit})")


def judge(args, samples, stats, purger, reloader, died, stuck, end, buf_zero_after):
    v = []
    v.append((not died, "etagate alive", died or "running and answering /metrics at every sample"))
    minute = [s for s in samples if s["label"].startswith("min ")]
    warm = next((s for s in samples if s["label"] == "warm-up"), None)
    labels = [s["label"] for s in minute]
    v.append(growth_check("RSS levels off", [s["rss_kib"] / 1024 for s in minute], labels,
                          warm and warm["rss_kib"] / 1024, args.rss_rel, args.rss_slack_mib, " MiB"))
    v.append(growth_check("open FDs level off", [s["fds"] for s in minute], labels,
                          warm and warm["fds"], args.fd_rel, args.fd_slack, ""))
    if end is not None and end["metrics"]:
        buf = end["metrics"].get("etagate_etag_buffer_bytes", -1)
        v.append((buf == 0, "ETag buffer back to 0 after the load",
                  f"etagate_etag_buffer_bytes = {buf:.0f}"
                  + (f" ({buf_zero_after:.1f} s after the last response)" if buf_zero_after is not None else f" after waiting {args.settle:.0f} s")))
    else:
        v.append((False, "ETag buffer back to 0 after the load", "no final sample"))
    budget_max = args.budget_max_mib * MiB
    over = [(s["label"], s["metrics"].get("etagate_cache_bytes", 0)) for s in samples
            if s["metrics"].get("etagate_cache_bytes", 0) > budget_max]
    v.append((not over, "cache within its budget",
              f"etagate_cache_bytes above {args.budget_max_mib} MiB at {over}" if over
              else f"etagate_cache_bytes <= {args.budget_max_mib} MiB (the larger budget) at every sample"))
    final = summarize(stats.snapshot())
    unexp = {k: n for k, n in stats.snapshot().items() if unexpected(*k)}
    detail = f"{final['unexpected']} of {final['requests']} requests"
    if unexp:
        detail += ": " + ", ".join(f"{c} {o} x{n}" for (c, o), n in sorted(unexp.items()))
    v.append((final["unexpected"] == 0, "no unexpected client errors", detail))
    if stuck:
        v.append((False, "load generator stopped", f"threads still waiting: {stuck}"))
    adm = []
    if purger.failures:
        adm.append(f"{purger.failures} purge failures ({'; '.join(purger.failure_examples)})")
    adm += reloader.anomalies
    v.append((not adm, "admin API answers as documented", "; ".join(adm) if adm else
              f"{purger.purges} purges ({purger.variants} stored responses removed), "
              f"{reloader.post_applied} reloads applied by POST, {reloader.hup} by SIGHUP, "
              f"{reloader.post_rejected} broken configs rejected"))
    if end is not None and end["metrics"]:
        m = end["metrics"]
        ok_n = m.get("etagate_config_reloads_total{result=success}", 0)
        fail_n = m.get("etagate_config_reloads_total{result=failure}", 0)
        gen = m.get("etagate_config_generation", 0)
        good = (ok_n == reloader.expected_success and fail_n == reloader.expected_failure
                and gen == 1 + reloader.expected_success)
        v.append((good, "reloads counted",
                  f"etagate_config_reloads_total success={ok_n:.0f} failure={fail_n:.0f}, generation {gen:.0f}; "
                  f"sent {reloader.expected_success} valid and {reloader.expected_failure} broken"))
        # The workload did what it claims: otherwise a pass would mean nothing.
        oc = stats.snapshot()
        hits = m.get("etagate_cache_requests_total{outcome=hit}", 0)
        n304 = oc[("cond/hot", "304")] + oc[("cond/nc", "304")]
        evictions = m.get("etagate_cache_evictions_total", 0)
        faults = sum(n for (c, _), n in oc.items() if c.startswith("fault/"))
        exercised = hits > 0 and n304 > 0 and evictions > 0 and purger.variants > 0 and faults > 0
        v.append((exercised, "workload exercised",
                  f"{hits:.0f} cache hits, {n304} 304s, {evictions:.0f} evictions, "
                  f"{purger.variants} purged responses, {faults} requests to failing URLs"))
    return v


def write_report(args, samples, stats, purger, reloader, verdict, wall_start, load_s, buf_zero_after):
    failed = [x for x in verdict if not x[0]]
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total = sum(w for _, w in MIX)
    mix = ", ".join(f"{op} {100 * w / total:.1f}%" for op, w in MIX)
    rows = []
    hdr = ("| sample | t (s) | RSS (MiB) | FDs | threads | cache (MiB) | objects | evictions | ETag buffer (B) "
           "| 2xx | 3xx | 4xx | 5xx | client requests | conn errors | timeouts | 5xx seen | unexpected | reloads ok | reloads failed |")
    rows.append(hdr)
    rows.append("|" + "---|" * (hdr.count("|") - 1))
    for s in samples:
        m, c = s["metrics"], s["client"]
        rc = lambda cls: f"{m.get(f'etagate_requests_total{{status_class={cls}}}', 0):.0f}"
        rows.append(
            f"| {s['label']} | {s['t']} | {s['rss_kib'] / 1024:.1f} | {s['fds']} | {s['threads']} "
            f"| {fmt_bytes(m.get('etagate_cache_bytes', 0))} | {m.get('etagate_cache_objects', 0):.0f} "
            f"| {m.get('etagate_cache_evictions_total', 0):.0f} | {m.get('etagate_etag_buffer_bytes', 0):.0f} "
            f"| {rc('2xx')} | {rc('3xx')} | {rc('4xx')} | {rc('5xx')} | {c['requests']} | {c['conn']} "
            f"| {c['timeout']} | {c['s5xx']} | {c['unexpected']} "
            f"| {m.get('etagate_config_reloads_total{result=success}', 0):.0f} "
            f"| {m.get('etagate_config_reloads_total{result=failure}', 0):.0f} |")
    oc = stats.snapshot()
    cats = sorted({c for c, _ in oc})
    orows = ["| category | origin | outcomes seen by clients | expected | max latency (s) |", "|---|---|---|---|---|"]
    for c in cats:
        outs = ", ".join(f"{o} x{n}" for (cc, o), n in sorted(oc.items()) if cc == c)
        orows.append(f"| {c} | {'fails on purpose' if c.startswith('fault/') else 'behaves'} | {outs} "
                     f"| {', '.join(sorted(EXPECTED[c]))} | {stats.latency_max[c]:.2f} |")
    end = samples[-1]["metrics"] if samples else {}
    origin_rows = ", ".join(f"{k.split('=')[1][:-1]} {v:.0f}" for k, v in sorted(end.items())
                            if k.startswith("etagate_origin_requests_total{"))
    cache_rows = ", ".join(f"{k.split('=')[1][:-1]} {v:.0f}" for k, v in sorted(end.items())
                           if k.startswith("etagate_cache_requests_total{"))
    warm = next((x for x in samples if x["label"] == "warm-up"), None)
    sensitivity_base = warm["rss_kib"] / 1024 if warm else 0
    sensitivity = (sensitivity_base * args.rss_rel + args.rss_slack_mib) / 20
    vrows = ["| check | result | detail |", "|---|---|---|"]
    for ok, name, detail in verdict:
        vrows.append(f"| {name} | {'pass' if ok else '**FAIL**'} | {detail.replace('|', '/')} |")
    doc = f"""# Soak test

Generated by `{args.command}`{' (do not edit by hand; rerun it)' if args.minutes >= 60 else ''}.
Started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(wall_start))}; load ran for {load_s:.0f} s.

**Verdict: {'FAIL' if failed else 'PASS'}**

## Setup

- Machine: {cpu}, {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), kernel {platform.release()},
  load average at the start {args.loadavg}. Everything runs on 127.0.0.1 and shares the machine
  with whatever else runs there.
- etagate: {args.version}, release binary, `server.threads: 2`, access log on (to `/dev/null`),
  upstream timeouts `connect: 1s, read: 1s`.
- Configurations, alternated by reloads every {args.reload_every:g} s (every third valid one by
  `SIGHUP`, the others by `POST /reload`; every fourth reload is a broken file that must be
  answered `422` and counted as a failure, after which the valid file is put back):
  - A: `cache.budget: 8MiB`, `etag.buffer_budget: 64MiB`, route `default` with
    `stale_if_error: 0s`, route `nc` (`/nc`) cached, text access log;
  - B: `cache.budget: 6MiB`, `etag.buffer_budget: 32MiB`, route `default` with
    `etag.max_buffer: 512KiB`, `stale_if_error: 10s` and debug headers, route `nc` not cached,
    JSON access log;
  - broken: an unknown key, a route naming an undefined upstream, a YAML syntax error.
- Purges: every {args.purge_every:g} s, `POST /purge` of 4 hot URLs and 4 recently fetched tail URLs.
- Origin: `scripts/soak/soak.py origin`, Python `ThreadingHTTPServer`, no validators; its
  behaviour is chosen by the URL (see the docstring): hot set of {HOT_URLS} URLs (2-16 KiB,
  max-age=30), long tail drawn from {TAIL_SPACE:,} URLs (8-48 KiB, max-age=600: far more than the
  budget holds, so eviction runs all the time), {NC_URLS} `public, no-cache` URLs (every request reaches the origin; a 304 comes from the
  hash of what it sent), slow bodies (32 KiB in 4
  pieces 0.2 s apart), 1.5 MiB bodies (above max_buffer and max_object_size), and failing URLs:
  500/503, connection reset before any byte, silence for {args.stall:g} s before the headers, and
  silence for {args.stall:g} s after 16 of 64 KiB of body.
- Load: `scripts/soak/soak.py drive`, {args.threads} threads, each with one keep-alive
  `http.client` connection, paced at {args.rate:g} requests/s in all (seed {args.seed}),
  client timeout {args.client_timeout:g} s. Mix: {mix}. A conditional request sends back the ETag
  the thread got for that URL (no ETag yet: a plain GET). Every 200 to a GET on a well-behaved
  URL is checked against the bytes the origin sends and must carry an ETag.
- Samples: at the start (before the load), after a {args.warmup:g} s warm-up, every minute, and
  at the end (after the load stopped and every response was read).

## Samples

Counters are totals since the start: `2xx`..`5xx` from `etagate_requests_total`, the client
columns from the load generator (`5xx seen` includes the 5xx the failing origin causes on
purpose; `unexpected` counts outcomes not in the table below).

""" + "\n".join(rows) + """

## Client outcomes by category

""" + "\n".join(orows) + f"""

Origin requests by outcome at the end: {origin_rows or '-'}.
Cache outcomes at the end: {cache_rows or '-'}.
Purges: {purger.purges} requests, {purger.keys} URLs, {purger.variants} stored responses removed.
Reloads sent: {reloader.post_applied} applied by POST, {reloader.hup} by SIGHUP,
{reloader.post_rejected} broken files rejected.

## Verdict

""" + "\n".join(vrows) + f"""

How it is judged:

- **etagate alive**: the process exists (not a zombie) every second, and `/metrics` answers at
  every sample.
- **Growth that does not level off** (RSS from `/proc/PID/status` VmRSS, open FDs from
  `/proc/PID/fd`): with 3 or more minute samples, the maximum of the last third of them must
  not exceed the maximum of the middle third by more than a margin of {args.rss_rel * 100:.0f}% of the
  warm-up sample plus {args.rss_slack_mib:g} MiB (FDs: {args.fd_rel * 100:.0f}% plus {args.fd_slack}). The margin is
  fixed by the size of the process under load, so a leak does not widen it. A leak keeps
  raising the maximum from one third to the next; a cache that filled, a connection pool that
  grew to its working size or an allocator that kept its arenas does not. With 1 or 2 minute
  samples (short runs), the maximum of the minute samples is compared the same way with the
  warm-up sample taken after {args.warmup:g} s, when the cache is already full, with a margin
  of {SHORT_RUN_REL * 100:.0f}% of it (RSS still climbs to its plateau for the first minutes: a
  short run ends anywhere on that slope), so a short run only catches gross growth. In a 60-minute run the thirds are 20 minutes apart, so a steady
  leak fails the check once it adds more than the margin in 20 minutes: with a warm-up RSS of
  {sensitivity_base:.0f} MiB here, about {sensitivity:.2f} MiB a minute ({sensitivity * 60:.0f} MiB an hour) or more.
- **ETag buffer**: `etagate_etag_buffer_bytes` must be 0 once the load has stopped and every
  response was read (waited for up to {args.settle:g} s).
- **Cache within its budget**: `etagate_cache_bytes` never above the larger of the two budgets.
- **Unexpected client errors**: each category has the outcomes its origin explains (table
  above). Well-behaved URLs must get their status (200, 304) and, for a 200 to a GET, the exact
  bytes and an ETag; any connection error, timeout, 5xx or wrong body there is unexpected.
  Failing URLs must fail the documented way (500/503 passed through, 502 for a reset, 504 for
  a silent origin, 502/504 or a cut body for one that stops in the middle of a body held back
  for hashing); a client timeout there (etagate hanging past its own 1 s read timeout) is
  unexpected too.
- **Admin API and reload accounting**: every purge answers 200, every valid reload by POST is
  applied with the next generation, every broken one is rejected with 422, and at the end
  `etagate_config_reloads_total` and `etagate_config_generation` match what was sent.
- **Workload exercised**: cache hits, 304s, evictions, purges that removed something and
  requests to failing URLs all happened; otherwise a pass would not mean much.
"""
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("origin")
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--stall", type=float, default=2.0)
    o.add_argument("--lifetime", type=float, default=3600.0)
    d = sub.add_parser("drive")
    d.add_argument("--base", required=True)
    d.add_argument("--admin", required=True)
    d.add_argument("--pid", type=int, required=True)
    d.add_argument("--token-file", required=True)
    d.add_argument("--conf", required=True, help="the file etagate was started with (-c)")
    d.add_argument("--conf-a", required=True)
    d.add_argument("--conf-b", required=True)
    d.add_argument("--broken", action="append", required=True)
    d.add_argument("--minutes", type=float, default=60)
    d.add_argument("--rate", type=float, default=300)
    d.add_argument("--threads", type=int, default=24)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--client-timeout", type=float, default=10)
    d.add_argument("--warmup", type=float, default=20)
    d.add_argument("--settle", type=float, default=10)
    d.add_argument("--reload-every", type=float, default=5)
    d.add_argument("--purge-every", type=float, default=3)
    d.add_argument("--stall", type=float, default=2.0)
    d.add_argument("--budget-max-mib", type=float, default=8)
    d.add_argument("--rss-rel", type=float, default=0.10)
    d.add_argument("--rss-slack-mib", type=float, default=4)
    d.add_argument("--fd-rel", type=float, default=0.10)
    d.add_argument("--fd-slack", type=int, default=16)
    d.add_argument("--report", required=True)
    d.add_argument("--version", default="etagate")
    d.add_argument("--loadavg", default="-")
    d.add_argument("--command", default="scripts/soak.sh")
    a = ap.parse_args()
    if a.cmd == "origin":
        origin(a)
        return 0
    return drive(a)


if __name__ == "__main__":
    sys.exit(main())
