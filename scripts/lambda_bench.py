#!/usr/bin/env python3
"""Init time and peak memory of each function's release binary, as a whole process.

A small Lambda runtime API (the `2018-06-01` interface the functions' runtime client polls)
runs on a loopback port. Each run starts a function's `bootstrap` the way Lambda does (its
environment from infra/template.yaml through scripts/stack.py, `AWS_LAMBDA_RUNTIME_API` pointing
here) and measures the time from just before exec to the first
`GET /2018-06-01/runtime/invocation/next`: the function's whole init (process start, config,
SDK clients), and the CPU time the process used by then (user + system, from wait4()). Then
its peak RSS is read (/proc/<pid>/status VmHWM) and the process stopped.

Work runs: the ingestion function gets one SQS batch (10 messages x 500 events) and the close
worker one batch of 50 close requests for seeded accounts, answered from the local endpoint
(moto_server); peak RSS then covers init plus the batch.

    lambda_bench.py --target target/release --runs 20     # prints a table (and JSON with --json)

Run it through scripts/lambda_bench.sh, which starts moto_server and builds the binaries.
"""
import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import stack as stackmod  # noqa: E402

NEXT = "/2018-06-01/runtime/invocation/next"


class Runtime:
    """The runtime API: hands out at most one queued event, records the first poll and the answer."""

    def __init__(self):
        self.lock = threading.Condition()
        self.first_poll = None
        self.event = None
        self.response = None
        self.served = False
        self.stopped = False

    def reset(self, event=None):
        with self.lock:
            self.first_poll, self.event, self.response, self.served = None, event, None, False

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True


def handler_for(rt):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path != NEXT:
                self.send_error(404)
                return
            now = time.perf_counter()
            with rt.lock:
                if rt.first_poll is None:
                    rt.first_poll = now
                    rt.lock.notify_all()
                event = None if rt.served else rt.event
                rt.served = True
            if event is None:
                # Nothing to run: hold the poll, as Lambda does between invocations.
                with rt.lock:
                    rt.lock.wait_for(lambda: rt.stopped, timeout=60)
                return
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 120_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:123456789012:function:bench")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Transfer-Encoding") == "chunked":
                body = self._chunked()
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with rt.lock:
                rt.response = (self.path, body)
                rt.lock.notify_all()

        def _chunked(self):
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()

    return Handler


def peak_rss_kib(pid):
    """The process's peak resident set since exec (VmHWM): wait4's ru_maxrss would also count
    the Python parent's pages the child had between fork and exec."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A stopped function drops its held poll: expected, not worth a traceback.
        pass


def run_once(binary, env, rt, event=None, timeout=120):
    """One process: returns (init ms, peak RSS KiB, response or None, log, CPU ms)."""
    rt.reset(event)
    t0 = time.perf_counter()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    ok = rt.wait(lambda: rt.first_poll is not None, timeout)
    init_ms = (rt.first_poll - t0) * 1000 if ok else None
    if event is not None and ok:
        ok = rt.wait(lambda: rt.response is not None, timeout)
        if not ok:
            proc.kill()
            raise RuntimeError(f"{binary} did not answer the invocation within {timeout} s")
    rss = peak_rss_kib(proc.pid) if proc.poll() is None else None
    proc.terminate()
    _, status, usage = os.wait4(proc.pid, 0)
    cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000
    proc.returncode = status
    log.seek(0)
    err = log.read().decode(errors="replace")
    if init_ms is None:
        raise RuntimeError(f"{binary} never polled the runtime API: {err[-2000:]}")
    if rss is None:
        raise RuntimeError(f"{binary} exited early: {err[-2000:]}")
    return init_ms, rss, rt.response, err, cpu_ms


def usage_batch(accounts, start, hours, seed):
    """One SQS event: 10 messages of 500 events for `accounts`, spread over `hours` from `start`."""
    rng = random.Random(seed)
    meters = ["cpu_seconds", "gpu_seconds", "memory_gib_seconds", "network_egress_gib"]
    records = []
    for m in range(10):
        events = []
        for i in range(500):
            t = start + dt.timedelta(seconds=rng.randrange(hours * 3600))
            meter = rng.choice(meters)
            dims = {"region": rng.choice(["eu-west", "us-east"])}
            if meter == "gpu_seconds":
                dims["gpu_model"] = rng.choice(["H100", "A100"])
            events.append({
                "id": f"bench-{seed}-{m}-{i}", "account_id": rng.choice(accounts),
                "provider_id": rng.choice(["prov_000", "prov_001", "prov_002"]), "job_id": f"job-{rng.randrange(200)}",
                "meter": meter, "quantity": f"{rng.randrange(1, 36000)}.{rng.randrange(100):02d}",
                "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "dimensions": dims,
            })
        records.append(sqs_record(json.dumps(events)))
    return {"Records": records}


def sqs_record(body):
    return {
        "messageId": str(uuid.uuid4()), "receiptHandle": "bench", "body": body, "attributes": {},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench", "awsRegion": "us-east-1",
    }


def lambda_env(function_env, port, memory):
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH", "HOME"))}
    env.update(function_env)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}", "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "RUST_LOG": "info",
    })
    return env


def seed_accounts(target, env, accounts, anchor):
    admin = os.path.join(target, "billing-admin")
    for a in accounts:
        subprocess.run([admin, "seed-sample", "--account", a, "--subscription", f"sub_{a}", "--cadence", "daily",
                        "--alignment", "anniversary", "--anchor", anchor.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "--currency", "USD"], check=True, env=env, stdout=subprocess.DEVNULL)


def summary(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--memory", type=int, default=128, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE given to the process")
    ap.add_argument("--only", help="comma separated logical function names")
    ap.add_argument("--no-work", action="store_true", help="skip the ingestion and close batches")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    stack = stackmod.Stack(stackmod.load_template(), f"bench{os.getpid()}").create()
    rt = Runtime()
    server = Server(("127.0.0.1", 0), handler_for(rt))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    results = {}
    try:
        names = sorted(stack["functions"])
        if args.only:
            names = [n for n in names if n in args.only.split(",")]
        for logical in names:
            f = stack["functions"][logical]
            binary = os.path.join(args.target, f["binary"])
            env = lambda_env(f["env"], port, args.memory)
            inits, rss, cpu = [], [], []
            for _ in range(args.runs):
                ms, kib, _, _, cpu_ms = run_once(binary, env, rt)
                inits.append(ms)
                rss.append(kib)
                cpu.append(cpu_ms)
            results[logical] = {"binary": f["binary"], "bytes": os.path.getsize(binary),
                                "init_ms": summary(inits), "init_cpu_ms": summary(cpu),
                                "init_rss_kib": max(rss)}
            print(f"{logical:<24} init ms min {min(inits):6.1f} median {statistics.median(inits):6.1f} "
                  f"max {max(inits):6.1f}   CPU ms median {statistics.median(cpu):5.1f}   "
                  f"peak RSS {max(rss) / 1024:5.1f} MiB", flush=True)
        if not args.no_work:
            work_runs(args, stack, rt, port, results)
    finally:
        with rt.lock:
            rt.stopped = True
            rt.lock.notify_all()
        server.shutdown()
        stackmod.Stack(stackmod.load_template(), stack["prefix"]).delete()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


def work_runs(args, stack, rt, port, results):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, second=0, minute=0)
    anchor = now - dt.timedelta(days=2)
    accounts = [f"bench_{os.getpid()}_{i:02d}" for i in range(50)]
    if "UsageIngestFunction" not in results:
        return
    ingest = stack["functions"]["UsageIngestFunction"]
    env = lambda_env(ingest["env"], port, args.memory)
    batch = usage_batch(accounts, anchor, 24, seed=7)
    t = time.perf_counter()
    ms, kib, resp, err, cpu = run_once(os.path.join(args.target, ingest["binary"]), env, rt, batch, timeout=1200)
    took = time.perf_counter() - t
    failures = json.loads(resp[1]).get("batchItemFailures", []) if resp else None
    results["UsageIngestFunction"]["batch"] = {
        "what": "one SQS batch, 10 messages x 500 events, 50 accounts", "peak_rss_kib": kib,
        "seconds": round(took, 2), "cpu_ms": round(cpu), "failures": failures}
    print(f"{'UsageIngestFunction':<24} batch of 10 x 500 events: peak RSS {kib / 1024:5.1f} MiB, {took:.1f} s "
          f"(moto), process CPU {cpu:.0f} ms, failures {failures}", flush=True)

    if "CloseWorkerFunction" not in results:
        return
    worker = stack["functions"]["CloseWorkerFunction"]
    wenv = lambda_env(worker["env"], port, args.memory)
    seed_accounts(args.target, {**os.environ, **worker["env"]}, accounts, anchor)
    period_end = anchor + dt.timedelta(days=1)
    requests = [sqs_record(json.dumps({"account_id": a, "subscription_id": f"sub_{a}",
                                       "period_end": period_end.strftime("%Y-%m-%dT%H:%M:%SZ")}))
                for a in accounts]
    t = time.perf_counter()
    ms, kib, resp, err, cpu = run_once(os.path.join(args.target, worker["binary"]), wenv, rt, {"Records": requests},
                                     timeout=1200)
    took = time.perf_counter() - t
    failures = json.loads(resp[1]).get("batchItemFailures", []) if resp else None
    closed = err.count("invoice finalized")
    results["CloseWorkerFunction"]["batch"] = {
        "what": "one SQS batch of 50 close requests (50 accounts, 2 daily periods each)", "peak_rss_kib": kib,
        "seconds": round(took, 2), "cpu_ms": round(cpu), "failures": failures, "invoices_finalized": closed}
    print(f"{'CloseWorkerFunction':<24} batch of 50 closes: peak RSS {kib / 1024:5.1f} MiB, {took:.1f} s (moto), "
          f"process CPU {cpu:.0f} ms, {closed} invoices finalized, failures {len(failures or [])}", flush=True)


if __name__ == "__main__":
    main()
