"""Schemathesis hooks for scripts/contract.sh.

cargo lambda's local emulator, which stands in for API Gateway in the contract run, answers 500
itself, without invoking the function, to a JSON request whose body is not UTF-8 or whose header
values are not ASCII. Those cases are left out here; the API's own answer to them (400 naming
`body` or `Idempotency-Key`) is covered through the handler by tests/idempotency.rs and
tests/keys.rs.

Randomly generated ids almost never name something that exists, so the account-scoped routes
would answer only 404. `seed` creates one of each (account, provider, price book, plan,
subscription, budget) before the run, and `map_path_parameters` points half of the generated
cases (chosen by a checksum of the parameters, so a run is repeatable) at them: the budgets,
estimates, subscriptions and invoice lists are then exercised on their success paths too.
"""
import json
import sys
import urllib.error
import urllib.request
import zlib
from datetime import datetime, timedelta, timezone

import schemathesis

SEEDED = {
    "account_id": "acct_seed",
    "provider_id": "prov_seed",
    "plan_id": "plan_seed",
    "subscription_id": "sub_seed",
    "budget_id": "budget_seed",
    "book_id": "book_seed",
}


def seed(base, key):
    """Creates the seeded objects through the API (201, or 409 when they exist)."""
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0).isoformat()
    acct = SEEDED["account_id"]
    requests = [
        ("/v1/accounts", {"account_id": acct, "currency": "USD"}),
        ("/v1/providers", {"provider_id": SEEDED["provider_id"], "name": "Seed", "fee_percent": "10"}),
        ("/v1/price-books", {"id": SEEDED["book_id"], "currency": "USD", "version": 1,
                             "owner": {"kind": "provider", "id": SEEDED["provider_id"]},
                             "effective_from": tomorrow,
                             "prices": [{"id": "gpu", "meter": "gpu_seconds",
                                         "model": {"type": "per_unit", "unit_price": "0.001"}}]}),
        ("/v1/plans", {"plan_id": SEEDED["plan_id"], "plan": {"name": "Seed", "recurring_fee": "10"}}),
        (f"/v1/accounts/{acct}/subscriptions",
         {"subscription_id": SEEDED["subscription_id"], "plan_id": SEEDED["plan_id"], "cadence": "monthly"}),
        (f"/v1/accounts/{acct}/budgets",
         {"budget_id": SEEDED["budget_id"], "amount": "100", "currency": "USD", "thresholds": [50, 100]}),
    ]
    for path, body in requests:
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
        try:
            status = urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            status = e.code
            if status != 409:
                sys.exit(f"seeding {path}: {status} {e.read().decode(errors='replace')}")
        print(f"seeded {path}: {status}")


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if not path_parameters:
        return path_parameters
    text = json.dumps(path_parameters, sort_keys=True, default=str)
    if zlib.crc32(text.encode("utf-8", "surrogatepass")) % 2:
        return path_parameters
    return {k: SEEDED.get(k, v) for k, v in path_parameters.items()}


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
