#!/usr/bin/env python3
"""Drives the local functions the way AWS would: HTTP requests to the API through its function
URL, SQS batches to the ingestion and close-worker functions through the Lambda Invoke API, with a
local SQS event source mapping (receive, invoke, delete what succeeded, retry what failed), and
the cycle-close function invoked with the event its EventBridge schedule sends."""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


API_KEY = os.environ.get("METERLINE_API_KEY", "")


def http(method, url, body=None, timeout=300, key=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if key or API_KEY:
        headers["authorization"] = f"Bearer {key or API_KEY}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(url, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.5)
    sys.exit(f"{url} did not answer; see .local/watch.log")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sqs_event(messages, arn, region):
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": region,
    } for m in messages]}


def event_source_mapping(sqs, source, invoke_base, region):
    """Plays the SQS trigger of the template until the queue is empty."""
    url = f"{invoke_base}/2015-03-31/functions/{source['binary']}/invocations"
    stats = Counter()
    empty = 0
    while empty < 2:
        # A batch of up to BatchSize messages, gathered from receives of at most 10 (SQS's limit).
        messages = []
        while len(messages) < source["batch_size"]:
            out = sqs.receive_message(QueueUrl=source["queue_url"],
                                      MaxNumberOfMessages=min(10, source["batch_size"] - len(messages)),
                                      AttributeNames=["All"], WaitTimeSeconds=0)
            got = out.get("Messages", [])
            if not got:
                break
            messages.extend(got)
        if not messages:
            empty += 1
            continue
        empty = 0
        status, resp = http("POST", url, sqs_event(messages, source["queue_arn"], region))
        if status != 200:
            sys.exit(f"{source['binary']} function failed: {status} {resp}")
        failed = {f["itemIdentifier"] for f in (resp or {}).get("batchItemFailures", [])}
        stats["invocations"] += 1
        for m in messages:
            if m["MessageId"] in failed:
                stats["retried"] += 1
                # Visible again at once, instead of after the visibility timeout.
                sqs.change_message_visibility(QueueUrl=source["queue_url"], ReceiptHandle=m["ReceiptHandle"],
                                              VisibilityTimeout=0)
            else:
                stats["processed"] += 1
                sqs.delete_message(QueueUrl=source["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    return stats


def source_of(stack, function):
    return next(s for s in stack["sqs_event_sources"] if s["function"] == function)


def table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--invoke", required=True)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    stack = json.load(open(args.stack))
    region = stack["region"]
    sqs = boto3.client("sqs", region_name=region, endpoint_url=stack["endpoint"])
    queue = stack["resources"]["UsageQueue"]
    dlq = stack["resources"]["UsageDeadLetterQueue"]
    api = f"{args.invoke}/lambda-url/api"

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = (now - dt.timedelta(hours=6)).replace(minute=0, second=0)
    gen = subprocess.run(
        [os.path.join(TARGET, "debug", "meterline"), "gen-usage", "--seed", str(args.seed), "--events",
         str(args.events), "--accounts", "5", "--providers", "3", "--start", iso(start), "--hours", "5"],
        check=True, capture_output=True, text=True)
    events = json.loads(gen.stdout)
    account = Counter(e["account_id"] for e in events).most_common(1)[0][0]
    print(f"\nSample workload: {len(events)} events (seed {args.seed}), {len(set(e['account_id'] for e in events))} "
          f"accounts, usage from {iso(start)}; showing the largest account, {account}.")

    print("\n== Waiting for the functions (the first request compiles them) ==")
    wait_for(f"{api}/health")
    status, health = http("GET", f"{api}/health")
    print(f"GET /health -> {status} {health}")

    # 1. A third of the events through the API, with a malformed one and a duplicate.
    via_api = events[: len(events) // 3]
    malformed = {"id": "demo-malformed", "account_id": account, "provider_id": "prov_000", "job_id": "job-x",
                 "meter": "gpu_hours", "quantity": "-5", "timestamp": iso(now)}
    print("\n== POST /v1/usage (through the API) ==")
    accepted = 0
    for i in range(0, len(via_api), 498):
        batch = via_api[i:i + 498]
        if i == 0:
            batch = batch + [malformed, batch[0]]
        status, out = http("POST", f"{api}/v1/usage", batch)
        if status != 202:
            sys.exit(f"POST /v1/usage failed: {status} {json.dumps(out)[:800]}")
        accepted += out.get("accepted", 0)
        if i == 0:
            print(f"first request -> {status}: accepted {out['accepted']}, rejected {out['rejected']}, "
                  f"duplicate {out['duplicate']}")
            bad = [r for r in out["results"] if r["status"] == "rejected"][0]
            for e in bad["errors"]:
                print(f"   rejected {bad['id']}: {e['field']}: {e['message']} ({e['code']})")
    print(f"{accepted} events accepted by the API and queued for ingestion")

    # 2. The rest straight to the queue, as a metrics collector does, plus redeliveries, a late
    #    event, one too late to accept, and a message that is not JSON at all.
    rest = events[len(events) // 3:]
    late = dict(events[0], id="demo-late", timestamp=iso(now - dt.timedelta(days=2)), quantity="3600")
    too_late = dict(events[0], id="demo-too-late", timestamp=iso(now - dt.timedelta(days=30)))
    bodies = [json.dumps(rest[i:i + 500]) for i in range(0, len(rest), 500)]
    bodies.append(json.dumps(rest[:500]))            # a redelivered message
    bodies.append(json.dumps(events[:200] + [late, too_late]))  # overlaps the API's events
    bodies.append("{\"id\": \"cut-off")              # poison: not JSON
    for b in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=b)
    print(f"\n== {len(bodies)} messages sent to the usage queue (incl. duplicates, a late event, a poison message) ==")

    print("\n== Ingestion: SQS -> usage-ingest (local event source mapping) ==")
    stats = event_source_mapping(sqs, source_of(stack, "UsageIngestFunction"), args.invoke, region)
    print(f"{stats['invocations']} invocations, {stats['processed']} messages processed, "
          f"{stats['retried']} deliveries of failing messages retried")
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    print(f"dead-letter queue: {len(dead)} message(s): {[m['Body'] for m in dead]}")

    print(f"\n== GET /v1/accounts/{account}/usage?granularity=day&group_by= (totals per meter) ==")
    q = f"granularity=day&group_by=&from={iso(now - dt.timedelta(days=3)).replace(':', '%3A')}"
    status, out = http("GET", f"{api}/v1/accounts/{account}/usage?{q}")
    table([(r["window_start"][:10], r["meter"], r["quantity"], r["event_count"]) for r in out["data"]],
          ["day", "meter", "quantity", "events"])
    expected = Counter()
    for e in events + [late]:
        if e["account_id"] == account:
            expected[e["meter"]] += 1
    got = Counter()
    for r in out["data"]:
        got[r["meter"]] += r["event_count"]
    print(f"events per meter match the distinct events sent: {got == expected}")

    print(f"\n== GET /v1/accounts/{account}/usage?granularity=hour&meter=gpu_seconds&group_by=gpu_model ==")
    q = f"granularity=hour&meter=gpu_seconds&group_by=gpu_model&from={iso(start).replace(':', '%3A')}&limit=8"
    status, out = http("GET", f"{api}/v1/accounts/{account}/usage?{q}")
    table([(r["window_start"][11:16], r["dimensions"].get("gpu_model", "-"), r["quantity"], r["event_count"])
           for r in out["data"]], ["hour", "gpu_model", "gpu_seconds", "events"])
    print(f"next_cursor: {out['next_cursor'][:24] + '...' if out['next_cursor'] else None}")

    seed_accounts(stack, events, start)

    print(f"\n== API keys: a customer key for {account} reads its own account only ==")
    status, created = http("POST", f"{api}/v1/api-keys", {"role": "customer", "account_id": account, "name": "demo"})
    if status != 201:
        sys.exit(f"POST /v1/api-keys failed: {status} {created}")
    customer = created["key"]
    print(f"POST /v1/api-keys -> {status}: id {created['id']}, prefix {created['prefix']} (secret shown once)")
    other = next(e["account_id"] for e in events if e["account_id"] != account)
    for acct in (account, other):
        status, out = http("GET", f"{api}/v1/accounts/{acct}/usage", key=customer)
        print(f"GET /v1/accounts/{acct}/usage with the customer key -> {status}")
    status, out = http("DELETE", f"{api}/v1/api-keys/{created['id']}")
    status, out = http("GET", f"{api}/v1/accounts/{account}/usage", key=customer)
    print(f"after DELETE /v1/api-keys/{created['id']}: the same request -> {status} ({out['title']})")

    print(f"\n== GET /v1/accounts/{events[0]['account_id']}/usage/rejected ==")
    status, out = http("GET", f"{api}/v1/accounts/{events[0]['account_id']}/usage/rejected")
    for r in out["data"]:
        for e in r["errors"]:
            print(f"{r['event_id']}: {e['field']}: {e['message']} ({e['code']})")
    if not out["data"]:
        sys.exit("expected rejected events")

    # 3. One exchange-rate refresh, as the EventBridge schedule triggers it (mock provider), then
    #    the rates through the API.
    print("\n== rate-refresh (a scheduled EventBridge event; mock provider) ==")
    scheduled = {"version": "0", "id": "demo-refresh", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": iso(now), "region": region,
                 "resources": ["arn:aws:events:us-east-1:123456789012:rule/rate-refresh"], "detail": {}}
    status, summary = http("POST", f"{args.invoke}/2015-03-31/functions/rate-refresh/invocations", scheduled)
    if status != 200:
        sys.exit(f"rate-refresh failed: {status} {summary}")
    print(f"refresh -> {summary}")
    status, out = http("GET", f"{api}/v1/rates")
    if status != 200 or not out["data"]:
        sys.exit(f"GET /v1/rates failed: {status} {out}")
    print("\n== GET /v1/rates ==")
    table([(r["pair"], r["rate"], r["as_of"], r["age_seconds"], str(r["stale"]).lower(), ",".join(r["sources"]))
           for r in out["data"]], ["pair", "rate", "as_of", "age s", "stale", "sources"])
    status, out = http("GET", f"{api}/v1/rates/EUR/BTC/history?limit=5")
    print(f"\nGET /v1/rates/EUR/BTC/history -> {status}: {len(out['data'])} rate(s), "
          f"next_cursor {out['next_cursor']}")

    close_cycle(stack, args, sqs, region, events, account, start, now)


def admin(stack, *argv):
    env = dict(os.environ, BILLING_TABLE=stack["resources"]["BillingTable"])
    out = subprocess.run([os.path.join(TARGET, "debug", "billing-admin"), *argv], check=True, env=env,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def capture_events(stack, region):
    """An EventBridge rule sending billing's events to a queue, so the demo can show them."""
    events = boto3.client("events", region_name=region, endpoint_url=stack["endpoint"])
    sqs = boto3.client("sqs", region_name=region, endpoint_url=stack["endpoint"])
    url = sqs.create_queue(QueueName=f"{stack['prefix']}-billing-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"{stack['prefix']}-billing", EventPattern=json.dumps({"source": ["meterline.billing"]}))
    events.put_targets(Rule=f"{stack['prefix']}-billing", Targets=[{"Id": "q", "Arn": arn}])
    return url


def money(v, cur):
    return f"{v} {cur}"


def percent(fraction):
    """A rate as every document prints it: `19 %`."""
    from decimal import Decimal
    p = (Decimal(fraction) * 100).normalize()
    return f"{p:f} %"


def price_cell(rated):
    """The unit price, or the tiers with the quantity in each (the line's calculation)."""
    how = (rated.get("calculation") or "").rsplit(" = ", 1)[0]
    by_model = rated.get("tiers") or "packages" in how or how.startswith("flat ")
    if rated.get("unit_price") is not None and not by_model:
        return rated["unit_price"]
    return how if rated.get("kind") == "usage" else ""


def tax_rows(inv):
    return [(l.get("rated") or {}).get("tax", {}) for l in inv["lines"] if (l.get("rated") or {}).get("tax")]


def seed_accounts(stack, events, start):
    """The workload's accounts, each with a daily subscription, anniversary-aligned 18 hours before
    the usage starts, so its first period [start - 18 h, start + 6 h) holds the whole workload and
    has ended. Keys name existing accounts only, so this comes before the first customer key."""
    accounts = sorted(set(e["account_id"] for e in events))
    anchor = start - dt.timedelta(hours=18)
    print(f"\n== Seeding price books, {len(accounts)} accounts and their daily subscriptions "
          f"(period {iso(anchor)} .. {iso(anchor + dt.timedelta(days=1))}) ==")
    for a in accounts:
        admin(stack, "seed-sample", "--account", a, "--subscription", f"sub_{a}", "--cadence", "daily",
              "--alignment", "anniversary", "--anchor", iso(anchor), "--currency", "USD")


def close_cycle(stack, args, sqs, region, events, account, start, now):
    accounts = sorted(set(e["account_id"] for e in events))
    providers = sorted(set(e["provider_id"] for e in events))
    anchor = start - dt.timedelta(hours=18)
    events_queue = capture_events(stack, region)

    print("\n== cycle-close, invoked as its EventBridge schedule would ==")
    scheduled = {"version": "0", "id": "demo-schedule", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": iso(dt.datetime.now(dt.timezone.utc)), "region": region,
                 "resources": [f"arn:aws:events:{region}:123456789012:rule/CycleClose"], "detail": {}}
    url = f"{args.invoke}/2015-03-31/functions/cycle-close/invocations"
    for attempt in ("first", "second (a duplicate firing)"):
        status, out = http("POST", url, scheduled)
        if status != 200:
            sys.exit(f"cycle-close failed: {status} {out}")
        print(f"{attempt} run -> {out['enqueued']} close requests queued (periods ended by {out['until']})")

    print("\n== Closing: SQS -> close-worker (local event source mapping) ==")
    stats = event_source_mapping(sqs, source_of(stack, "CloseWorkerFunction"), args.invoke, region)
    print(f"{stats['invocations']} invocations, {stats['processed']} requests processed, "
          f"{stats['retried']} retried")

    docs = admin(stack, "invoices", "--account", account)
    invoices = docs["invoices"]
    if len(invoices) != 1:
        sys.exit(f"expected one invoice for {account}, found {len(invoices)}")
    inv = invoices[0]
    cur = inv["currency"]
    print(f"\n== Invoice {inv['number']} ({inv['status']}) for {account} ==")
    print(f"period {inv['period']['start']} .. {inv['period']['end']}, issued {inv['issued_at'][:19]}Z, "
          f"due {inv['due_date']}, id {inv['invoice_id']}")
    rows = []
    for l in inv["lines"]:
        r = l.get("rated") or {}
        dims = ",".join(f"{k}={v}" for k, v in sorted(r.get("dimensions", {}).items()))
        tax = r.get("tax") or {}
        rate = f" ({percent(tax['rate'])})" if "rate" in tax else ""
        gross = l["gross"] + (" incl. tax" if tax.get("inclusive") else "")
        qty = l["quantity"] + (f" {r['unit']}" if r.get("unit") and r.get("kind") != "reserved_unused" else "")
        rows.append((l["provider_id"], r.get("kind", "adjustment"), l.get("meter", "-"), dims or "-",
                     qty, price_cell(r) or "-", l["net"], l["tax"] + rate, gross))
    table(rows, ["provider", "kind", "meter", "dimensions", "quantity", "unit price / tiers", "net", "tax",
                 "gross"])
    rates = sorted({percent(b["rate"]) for b in tax_rows(inv)})
    print(f"{'net':>12} {money(inv['net_total'], cur)}")
    print(f"{'tax':>12} {money(inv['tax_total'], cur)} (DE {', '.join(rates) or '-'})")
    print(f"{'total':>12} {money(inv['total'], cur)}")
    print(f"{'credit':>12} {money(inv['credit_applied'], cur)}")
    print(f"{'amount due':>12} {money(inv['amount_due'], cur)}  (payment requested automatically)")

    print("\n== Provider statements (every account's invoice for this period) ==")
    rows, total = [], {"billed": 0, "fee": 0, "payout": 0, "tax": 0}
    from decimal import Decimal
    sums = {k: Decimal(0) for k in total}
    for p in providers + ["marketplace"]:
        entries = admin(stack, "statements", "--provider", p, "--from", iso(anchor),
                        "--to", iso(now + dt.timedelta(days=2)))
        b = sum((Decimal(e["statement"]["usage_billed"]["amount"]) for e in entries), Decimal(0))
        f = sum((Decimal(e["statement"]["marketplace_fee"]["amount"]) for e in entries), Decimal(0))
        po = sum((Decimal(e["statement"]["payout"]["amount"]) for e in entries), Decimal(0))
        t = sum((Decimal(e["statement"]["tax"]["amount"]) for e in entries), Decimal(0))
        pct = entries[0]["statement"]["fee_percent"] if entries else "-"
        rows.append((p, len(entries), b, f"{pct} %", f, po, t))
        for k, v in zip(("billed", "fee", "payout", "tax"), (b, f, po, t)):
            sums[k] += v
    table(rows, ["provider", "invoices", "usage billed", "fee rate", "marketplace fee", "payout", "tax"])
    invoiced = Decimal(0)
    for a in accounts:
        for i in admin(stack, "invoices", "--account", a)["invoices"]:
            invoiced += Decimal(i["total"])
    identity = invoiced == sums["payout"] + sums["fee"] + sums["tax"]
    print(f"customers invoiced {invoiced} USD = payouts {sums['payout']} + fees {sums['fee']} + tax {sums['tax']}: "
          f"{identity}")
    if not identity:
        sys.exit("the provider statements do not balance")

    got = sqs.receive_message(QueueUrl=events_queue, MaxNumberOfMessages=10).get("Messages", [])
    print(f"\n== EventBridge (a rule on source meterline.billing -> a queue): {len(got)}+ events ==")
    for m in got[:4]:
        e = json.loads(m["Body"])
        print(f"{e.get('detail-type')}: {e.get('detail', {}).get('event_id')}")


if __name__ == "__main__":
    main()
