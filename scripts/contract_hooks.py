"""Schemathesis hooks for scripts/contract.sh.

cargo lambda's local emulator, which stands in for API Gateway in the contract run, answers 500
itself, without invoking the function, to a JSON request whose body is not UTF-8 or whose header
values are not ASCII. Those cases are left out here; the API's own answer to them (400 naming
`body` or `Idempotency-Key`) is covered through the handler by tests/idempotency.rs and
tests/keys.rs.

Randomly generated ids almost never name something that exists, so the account-scoped routes
would answer only 404. `seed` creates, through the API, the objects the document's examples name
(account `acct_1`, provider `prov_1`, price book `book_1`, plan `pro`, subscription `sub_1`,
budget `monthly`, a credit grant, the open authorization `hold_1` and spend limits), and a closed invoice with a credit note and provider statements (an account
whose hourly periods have ended, usage through the ingestion function, the cycle closed by the
cycle-close and close-worker functions: scripts/closing.py). `map_path_parameters` sends every
example value to the seeded object it stands for, and half of the generated cases (chosen by a
checksum of the parameters, so a run is repeatable) to the seeded objects too.

A few rules depend on the time of the request, which a schema cannot state: usage events must
be recent, price books start now or later, subscriptions start within a week back or a year
ahead, a quote's job starts in the account's open period; a cursor is only one the API returned.
`before_call` sets those fields on half of the generated cases (the others keep what was
generated, so the API's refusals are exercised too), gives each request its own
`Idempotency-Key`, and gives the operations that use their object up or change it (deleting a
budget, cancelling a subscription or changing its plan, capturing or releasing an authorization,
rotating or revoking a key) a fresh one, and new grants and authorizations accounts of their own:
subscriptions under an account of their own (`acct_fresh`), keys at most `MAX_FRESH_KEYS`.
"""
import datetime as dt
import itertools
import json
import os
import sys
import urllib.error
import urllib.request
import zlib

import schemathesis

# The ids the document's examples use (functions/api/src/request/path.rs), and what each stands for.
SEEDED = {
    "account_id": "acct_1",
    "provider_id": "prov_1",
    "plan_id": "pro",
    "subscription_id": "sub_1",
    "budget_id": "monthly",
    "hold_id": "hold_1",
    "top_up_id": "topup_1",
    "book_id": "book_1",
    "version": 1,
}
# The closed invoice's account and the provider its usage was priced for.
CLOSED = {"account_id": "acct_closed", "subscription_id": "sub_closed", "provider_id": "prov_000"}
SEEDS_FILE = os.environ.get("CONTRACT_SEEDS", "")
_counter = itertools.count()


def _seeds():
    if not SEEDS_FILE or not os.path.exists(SEEDS_FILE):
        return {}
    return json.load(open(SEEDS_FILE))


def _call(base, key, method, path, body=None, ok=(200, 201, 202, 409), quiet=False):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 method=method, headers={"Authorization": f"Bearer {key}",
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, out = r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        status, out = e.code, json.loads(e.read() or b"null")
    if status not in ok:
        sys.exit(f"seeding {method} {path}: {status} {out}")
    if not quiet:
        print(f"seeded {method} {path}: {status}")
    return out


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(base, key, stack_file, watch, seeds_file):
    """Creates the seeded objects through the API and the functions; writes their ids."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import closing

    stack = closing.load(stack_file)
    # The sample catalog first: billing-admin writes the catalog whole.
    hour = closing.hour()
    closing.seed_sample(stack, CLOSED["account_id"], CLOSED["subscription_id"], hour - dt.timedelta(hours=2))
    events = [{"id": f"seed-{i}", "account_id": CLOSED["account_id"], "provider_id": CLOSED["provider_id"],
               "job_id": "job_seed", "meter": "cpu_seconds", "quantity": "3600",
               "timestamp": _iso(hour - dt.timedelta(minutes=90 - i))} for i in range(3)]
    _call(base, key, "POST", "/v1/usage", events)
    print(f"ingestion: {dict(closing.ingest(stack, watch))}")
    out, stats = closing.close(stack, watch)
    print(f"close: {out}, {dict(stats)}")

    tomorrow = _iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    acct = SEEDED["account_id"]
    _call(base, key, "POST", "/v1/accounts", {"account_id": acct, "currency": "USD"})
    _call(base, key, "POST", "/v1/accounts", {"account_id": FRESH_ACCOUNT, "currency": "USD"})
    _call(base, key, "POST", "/v1/providers",
          {"provider_id": SEEDED["provider_id"], "name": "Seed", "fee_percent": "10"})
    _call(base, key, "POST", "/v1/price-books",
          {"id": SEEDED["book_id"], "currency": "USD", "version": 1,
           "owner": {"kind": "provider", "id": SEEDED["provider_id"]}, "effective_from": tomorrow,
           "prices": [{"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.001"}}]})
    _call(base, key, "POST", "/v1/plans", {"plan_id": SEEDED["plan_id"], "plan": {"name": "Seed", "recurring_fee": "10"}})
    _call(base, key, "POST", f"/v1/accounts/{acct}/subscriptions",
          {"subscription_id": SEEDED["subscription_id"], "plan_id": SEEDED["plan_id"], "cadence": "monthly"})
    _call(base, key, "POST", f"/v1/accounts/{acct}/budgets",
          {"budget_id": SEEDED["budget_id"], "amount": "100", "currency": "USD", "thresholds": [50, 100]})
    # Credit enough for every authorization of the run, and the examples' open hold.
    _call(base, key, "POST", f"/v1/accounts/{acct}/credit-grants",
          {"grant_id": "seed_credit", "amount": "1000000.00", "currency": "USD", "kind": "paid"})
    _call(base, key, "POST", f"/v1/accounts/{acct}/authorizations",
          {"hold_id": SEEDED["hold_id"], "job_id": "job_1", "max_amount": "10.00", "currency": "USD",
           "expires_in_seconds": 30 * 86400})
    # The examples' top-up (pending: the run has no payment service to pay it).
    _call(base, key, "POST", f"/v1/accounts/{acct}/top-ups",
          {"top_up_id": SEEDED["top_up_id"], "amount": "100.00", "currency": "USD"})
    # So that reading them answers 200; far above what the run's usage draws.
    _call(base, key, "PUT", f"/v1/accounts/{acct}/spend-limits",
          {"currency": "USD", "soft": "500000.00", "hard": "900000.00"})

    closed = CLOSED["account_id"]
    invoices = _call(base, key, "GET", f"/v1/accounts/{closed}/invoices")["data"]
    if not invoices:
        sys.exit("seeding: the close made no invoice")
    invoice = invoices[0]["invoice_id"]
    # Voided by the run: an invoice without the credit note (a credited invoice cannot be voided).
    void = invoices[-1]["invoice_id"]
    note = _call(base, key, "POST", f"/v1/accounts/{closed}/invoices/{invoice}/credit-notes",
                 {"amount": "0.01", "reason": "order_change", "credit_note_id": "cn_seed"})
    statements = _call(base, key, "GET", f"/v1/providers/{CLOSED['provider_id']}/statements")["data"]
    if not statements:
        sys.exit("seeding: the close wrote no provider statement")
    json.dump({"invoice_id": invoice, "void_invoice_id": void, "credit_note_id": note["credit_note_id"],
               "statement_id": statements[0]["statement_id"]}, open(seeds_file, "w"))


def _half(value):
    text = json.dumps(value, sort_keys=True, default=str)
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % 2 == 0


def _example(name, value):
    """Whether `value` is the document's example of path parameter `name`."""
    # The same values as `example` in functions/api/src/request/path.rs.
    examples = {**SEEDED, "invoice_id": "inv_acct_1~sub_1_20260101T000000Z",
                "credit_note_id": "credit-note#inv_acct_1~sub_1_20260101T000000Z#cn_1",
                "statement_id": "20261125T130000.000Z:inv_acct_1~sub_1_20261025T130000Z"}
    return str(examples.get(name)) == str(value)


def _fragment_safe(name, value):
    if name == "credit_note_id" and isinstance(value, str):
        return value.replace("#", "%23")
    return value


def _paths(path_parameters, path):
    """Points example ids, and half of the generated ones, at the seeded objects."""
    if not path_parameters:
        return path_parameters
    examples = all(_example(k, v) for k, v in path_parameters.items())
    # A credit note's read is always pointed at the seeded note: the stateful phase reaches it
    # with few cases, and were they all left to generated ids (404), the run would warn that no
    # data reaches it (seen in about one run in three).
    pinned = "{credit_note_id}" in path and path.endswith("}")
    if not examples and not pinned and not _half(path_parameters):
        # A credit note id from a response (a link) holds `#` too: percent-encoded here as below,
        # or the client cuts the path at it and every such read is a 404.
        return {k: _fragment_safe(k, v) for k, v in path_parameters.items()}
    seeds = _seeds()
    # The routes on one invoice or credit note are the closed invoice's account's; a statement
    # is its provider's.
    closed = "{invoice_id}" in path or "{credit_note_id}" in path
    statement = "{statement_id}" in path
    out = {}
    for k, v in path_parameters.items():
        if k == "invoice_id" and path.endswith("/void") and "void_invoice_id" in seeds:
            out[k] = seeds["void_invoice_id"]
        elif k == "credit_note_id" and k in seeds:
            # Its `#` percent-encoded here: the HTTP client would take a bare `#` for the start
            # of a fragment (the API decodes `%23`, also when it arrives encoded twice).
            out[k] = _fragment_safe(k, seeds[k])
        elif k in ("invoice_id", "credit_note_id", "statement_id") and k in seeds:
            out[k] = seeds[k]
        elif k == "account_id" and closed:
            out[k] = CLOSED["account_id"]
        elif k == "provider_id" and statement:
            out[k] = CLOSED["provider_id"]
        else:
            out[k] = SEEDED.get(k, v)
    return out


def _now(minutes=0):
    return _iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes))


# The examples of the document (functions/api/src/request/) that name a time, which the rules
# relative to now refuse: they are always moved to now.
DOC_TIMES = ("2030-01-01T00:00:00Z", "2030-01-05T09:00:00Z")


def _doc_time(value):
    return isinstance(value, str) and value in DOC_TIMES


def _body(method, path, body):
    """Sets the fields whose valid values depend on now or on the store."""
    n = next(_counter)
    run = f"{os.getpid()}_{n}"
    if method not in ("POST", "PUT") or not isinstance(body, (dict, list)):
        return body
    if path == "/v1/usage":
        for e in body if isinstance(body, list) else [body]:
            if isinstance(e, dict) and (_doc_time(e.get("timestamp")) or _half(e)):
                e["timestamp"] = _now()
    elif not isinstance(body, dict):
        return body
    elif path in ("/v1/accounts", "/v1/accounts/{account_id}"):
        # The local stack has exchange rates for none of the other currencies: an account billed
        # in one answers quotes and plan-change previews with the documented 503.
        if "currency" in body:
            body["currency"] = "USD"
        if _half(body):
            if path == "/v1/accounts":
                body["account_id"] = f"acct_gen_{run}"
            else:
                body.pop("account_id", None)
    elif path == "/v1/price-books" and (_doc_time(body.get("effective_from")) or _half(body)):
        # A provider of its own, so that the run's books never overlap.
        body.clear()
        body.update({"id": f"book_gen_{run}", "version": 1, "currency": "USD",
                     "owner": {"kind": "provider", "id": f"prov_gen_{run}"}, "effective_from": _now(60),
                     "prices": [{"id": "cpu", "meter": "cpu_seconds",
                                 "model": {"type": "per_unit", "unit_price": "0.0001"}}]})
        body.pop("effective_to", None)
    elif path == "/v1/accounts/{account_id}/subscriptions" and _half(body):
        body.update({"plan_id": SEEDED["plan_id"], "start": _now(), "subscription_id": f"sub_gen_{run}"})
        body.pop("plan_version", None)
    elif path.endswith("/change") or path.endswith("/change/preview"):
        # On a fresh subscription (`_fresh`); to the seeded plan, which has one version.
        body["plan_id"] = SEEDED["plan_id"]
        body.pop("plan_version", None)
    elif path == "/v1/estimates/job":
        job = body.get("job")
        if isinstance(job, dict) and (_doc_time(job.get("start")) or _half(body)):
            body["account_id"] = SEEDED["account_id"]
            job.update({"start": _now(1), "provider_id": SEEDED["provider_id"]})
    elif "/budgets" in path and _half(body):
        body.pop("account_id", None)
        body.pop("thresholds", None)
        if path.endswith("{budget_id}"):
            body.pop("budget_id", None)
        else:
            body["budget_id"] = f"budget_gen_{run}"
    elif path == "/v1/accounts/{account_id}/credit-grants" and _half(body):
        body.update({"grant_id": f"grant_gen_{run}", "currency": "USD"})
        for k in ("effective_at", "expires_at", "note"):
            body.pop(k, None)
    elif path == "/v1/accounts/{account_id}/top-ups" and _half(body):
        # A new top-up of the seeded account's currency (the schema cannot tie the id to an amount).
        body.update({"top_up_id": f"topup_gen_{run}", "currency": "USD"})
    elif path == "/v1/accounts/{account_id}/authorizations":
        # Either a job or an amount, which the schema cannot state: half of the cases are made an
        # authorization of a small amount in the seeded account's currency.
        job = body.get("job")
        if isinstance(job, dict) and _doc_time(job.get("start")):
            job.update({"start": _now(1), "provider_id": SEEDED["provider_id"]})
        if _half(body):
            body.pop("job", None)
            body.update({"hold_id": f"hold_gen_{run}", "max_amount": "1.00"})
            for k in ("currency", "provider_id", "meters"):
                body.pop(k, None)
    elif path.endswith("/capture") and _half(body):
        # The fresh hold of the case (`_fresh`) holds 1.00.
        body["amount"] = "0.50"
        body.pop("capture_id", None)
    elif path.endswith("/credit-notes") and _half(body):
        body["amount"] = "0.01"
        body.pop("credit_note_id", None)
    elif path.endswith("/spend-limits") and _half(body):
        # Soft below hard, in the currency's minor units, which the schema cannot state; kept far
        # above what the run's usage draws.
        body.clear()
        body.update({"currency": "USD", "soft": "500000.00", "hard": "900000.00"})
    elif path.endswith("/mark-paid") and _half(body):
        body.pop("amount", None)
    return body


# Query parameters whose valid values depend on each other or on what the API returned before.
RANGES = ("cursor", "from", "to", "issued_from", "issued_to", "period_from", "period_to", "min_total",
          "max_total", "since")


def _query(path, query):
    if not isinstance(query, dict) or not _half(query):
        return query
    if path == "/v1/reports/tax":
        query.update({"from": _now(-60 * 24), "to": _now(1)})
        return query
    for k in RANGES:
        query.pop(k, None)
    return query


def _fresh(case, method, path):
    """A fresh object for the operations that use theirs up or change it (delete a budget, cancel
    a subscription or change its plan, rotate or revoke a key), never the seeded one."""
    if path.endswith("/cancel") or path.endswith("/change") or path.endswith("/change/preview"):
        # Under an account of their own, so that the seeded account's list stays short.
        sub = f"sub_gen_{os.getpid()}_{next(_counter)}"
        _call(BASE, KEY, "POST", f"/v1/accounts/{FRESH_ACCOUNT}/subscriptions",
              {"subscription_id": sub, "plan_id": SEEDED["plan_id"], "cadence": "monthly"}, quiet=True)
        case.path_parameters.update({"account_id": FRESH_ACCOUNT, "subscription_id": sub})
    elif path == "/v1/accounts/{account_id}/budgets/{budget_id}" and method == "DELETE":
        budget = f"budget_gen_{os.getpid()}_{next(_counter)}"
        _call(BASE, KEY, "POST", f"/v1/accounts/{SEEDED['account_id']}/budgets",
              {"budget_id": budget, "amount": "10", "currency": "USD"}, quiet=True)
        case.path_parameters.update({"account_id": SEEDED["account_id"], "budget_id": budget})
    elif path.startswith("/v1/accounts/{account_id}/authorizations/{hold_id}/") and method == "POST":
        # A capture or release closes its hold: each gets an open one of its own.
        acct = _credit_account()
        hold = f"hold_gen_{os.getpid()}_{next(_counter)}"
        _call(BASE, KEY, "POST", f"/v1/accounts/{acct}/authorizations",
              {"hold_id": hold, "job_id": hold, "max_amount": "1.00", "currency": "USD"}, quiet=True)
        case.path_parameters.update({"account_id": acct, "hold_id": hold})
    elif path in ("/v1/accounts/{account_id}/credit-grants", "/v1/accounts/{account_id}/authorizations") \
            and method == "POST" and case.path_parameters.get("account_id") == SEEDED["account_id"]:
        # New grants and holds go to the run's credit accounts, so the seeded ledger stays small.
        case.path_parameters["account_id"] = _credit_account()
    elif path.startswith("/v1/api-keys/{key_id}") and method in ("POST", "DELETE"):
        # At most MAX_FRESH_KEYS, so that the key list stays short; then the last one again.
        if len(_fresh_keys) < MAX_FRESH_KEYS:
            _fresh_keys.append(
                _call(BASE, KEY, "POST", "/v1/api-keys", {"role": "operator", "name": "contract"}, quiet=True)["id"]
            )
        case.path_parameters["key_id"] = _fresh_keys[-1]


FRESH_ACCOUNT = "acct_fresh"
# A ledger's state is bounded (docs/credits.md, limits): the run's grants and holds are spread
# over accounts of their own, a new one (with credit) every CREDIT_BATCH of them.
CREDIT_BATCH = 20
_credit = {"account": None, "used": 0}


def _credit_account():
    if _credit["account"] is None or _credit["used"] >= CREDIT_BATCH:
        acct = f"acct_credit_{os.getpid()}_{next(_counter)}"
        _call(BASE, KEY, "POST", "/v1/accounts", {"account_id": acct, "currency": "USD"}, quiet=True)
        _call(BASE, KEY, "POST", f"/v1/accounts/{acct}/credit-grants",
              {"grant_id": "run_credit", "amount": "1000000.00", "currency": "USD", "kind": "paid"}, quiet=True)
        _credit.update(account=acct, used=0)
    _credit["used"] += 1
    return _credit["account"]
MAX_FRESH_KEYS = 30
_fresh_keys = []


BASE = os.environ.get("CONTRACT_BASE", "")
KEY = os.environ.get("METERLINE_API_KEY", "")


@schemathesis.hook
def before_call(context, case, kwargs):
    """Applied to every case of every phase (the `map_*` hooks do not reach the coverage phase)."""
    method, path = case.operation.method.upper(), case.operation.path
    if case.path_parameters:
        case.path_parameters = _paths(case.path_parameters, path)
        _fresh(case, method, path)
    if case.body is not None and not isinstance(case.body, (str, bytes)):
        case.body = _body(method, path, case.body)
    if case.query:
        case.query = _query(path, case.query)
    # One Idempotency-Key per request: a key sent again with another body is refused (422), and
    # schemathesis repeats the values it generates for a header.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"contract-{os.getpid()}-{next(_counter)}"


def _utf8(text):
    try:
        (text.encode("utf-8") if isinstance(text, str) else bytes(text)).decode("utf-8")
        return True
    except (UnicodeError, TypeError, ValueError):
        return False


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, (str, bytes, bytearray)):
        return _utf8(body)
    # A JSON body: every key and string in it must encode as UTF-8 (Python strings may hold lone
    # surrogates, which are sent as bytes that are not UTF-8).
    try:
        json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        return True
    except (UnicodeError, TypeError, ValueError):
        return False


@schemathesis.hook
def filter_headers(ctx, headers):
    return all(str(k).isascii() and str(v).isascii() for k, v in (headers or {}).items())
