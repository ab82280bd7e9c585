"""A whole billing flow through the client openapi-python-client generated from /openapi.json
(scripts/client_flow.sh): an account, a provider with the next version of its price book, a plan,
an hourly subscription whose first periods have ended, usage (through the ingestion function),
the cycle closed (cycle-close and close-worker), the invoice, the provider statements and a credit
note. Each call goes through the generated code, which parses each answer into its models; any
call it cannot make, or any answer it cannot read, fails the run.

The sample price books (in force since 2020, written by billing-admin as the demo does) price the
usage: the API refuses a price book that starts in the past, and the close prices each hour's
usage with the book in force at that hour, so a book created now prices nothing already over.
"""
import datetime as dt
import json
import os
import sys
from decimal import Decimal

from meterline_client import AuthenticatedClient
from meterline_client.api.accounts import create_account, get_account
from meterline_client.api.invoices import (
    create_credit_note,
    get_credit_note,
    get_invoice,
    list_credit_notes,
    list_invoices,
)
from meterline_client.api.plans import create_plan, get_plan
from meterline_client.api.price_books import create_price_book, list_book_versions
from meterline_client.api.providers import create_provider
from meterline_client.api.statements import get_statement, list_statements
from meterline_client.api.subscriptions import create_subscription, get_subscription
from meterline_client.api.usage import get_usage, post_usage
from meterline_client.models import (
    GetUsageGranularity,
    NewAccount,
    NewCreditNote,
    NewPlan,
    NewPriceBook,
    NewProvider,
    NewSubscription,
    UsageEvent,
)

import closing

PROVIDER = "prov_000"  # the sample books' provider
BOOK = "prov-000-usd"


def check(what, response, *statuses):
    """The answer's status is one of `statuses`; the generated client parsed its body."""
    if response.status_code not in statuses:
        sys.exit(f"{what}: {response.status_code} {response.content.decode(errors='replace')[:2000]}")
    if response.parsed is None:
        sys.exit(f"{what}: the generated client could not read the answer: {response.content[:500]!r}")
    body = json.loads(response.content) if response.content else None
    print(f"{what}: {response.status_code}")
    return response.parsed, body


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main(base, key, stack_file, watch):
    stack = closing.load(stack_file)
    run = os.getpid()
    account, subscription, plan = f"acct_flow_{run}", f"sub_flow_{run}", f"plan_flow_{run}"
    hour = closing.hour()
    start = hour - dt.timedelta(hours=2)
    # The sample catalog (books, fees, tax rates) and billing-admin's own sample account.
    closing.seed_sample(stack, f"acct_sample_{run}", f"sub_sample_{run}", start)

    client = AuthenticatedClient(base_url=base, token=key, timeout=120.0, raise_on_unexpected_status=True)
    with client as c:
        # The provider of the sample books, and the next version of its book from tomorrow.
        check("create provider", create_provider.sync_detailed(client=c, body=NewProvider.from_dict(
            {"provider_id": PROVIDER, "name": "CPU Co", "fee_percent": "15"})), 201, 409)
        tomorrow = iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
        check("create price book version", create_price_book.sync_detailed(client=c, body=NewPriceBook.from_dict(
            {"id": BOOK, "owner": {"kind": "provider", "id": PROVIDER}, "currency": "USD", "version": 2,
             "effective_from": tomorrow,
             "prices": [{"id": "cpu", "meter": "cpu_seconds",
                         "model": {"type": "per_unit", "unit_price": "0.00003"}}]})), 201, 409)
        _, versions = check("list the book's versions", list_book_versions.sync_detailed(BOOK, client=c), 200)
        assert [v["version"] for v in versions["data"]][:2] == [1, 2], versions
        check("create plan", create_plan.sync_detailed(client=c, body=NewPlan.from_dict(
            {"plan_id": plan, "plan": {"name": "Flow", "recurring_fee": "2.50"}})), 201)
        check("read plan", get_plan.sync_detailed(plan, client=c), 200)
        check("create account", create_account.sync_detailed(client=c, body=NewAccount.from_dict(
            {"account_id": account, "currency": "USD", "timezone": "UTC",
             "policy": {"terms": {"type": "net", "days": 14}},
             "tax": {"jurisdiction": {"country": "DE"}}})), 201)
        check("read account", get_account.sync_detailed(account, client=c), 200)
        # Hourly from two hours ago: its first two periods have ended.
        _, sub = check("create subscription", create_subscription.sync_detailed(account, client=c,
            body=NewSubscription.from_dict({"subscription_id": subscription, "plan_id": plan, "cadence": "hourly",
                                            "alignment": "anniversary", "start": iso(start)})), 201)
        check("read subscription", get_subscription.sync_detailed(account, subscription, client=c), 200)

        events = [UsageEvent.from_dict({"id": f"flow-{run}-{i}", "account_id": account, "provider_id": PROVIDER,
                                        "job_id": f"job_{run}", "meter": "cpu_seconds", "quantity": "3600",
                                        "timestamp": iso(start + dt.timedelta(minutes=20 + i))})
                  for i in range(4)]
        _, accepted = check("send usage", post_usage.sync_detailed(client=c, body=events), 202)
        assert accepted["accepted"] == 4, accepted
        print(f"ingestion: {dict(closing.ingest(stack, watch))}")
        _, usage = check("read usage", get_usage.sync_detailed(
            account, client=c, granularity=GetUsageGranularity.HOUR, from_=start, to=hour), 200)
        assert sum(Decimal(r["quantity"]) for r in usage["data"]) == Decimal(14400), usage

        out, stats = closing.close(stack, watch)
        print(f"close: {out['enqueued']} queued, {dict(stats)}")

        _, page = check("list invoices", list_invoices.sync_detailed(account, client=c), 200)
        invoices = sorted(page["data"], key=lambda i: i["period"]["start"])
        assert len(invoices) == 2, page
        first = invoices[0]["invoice_id"]
        _, invoice = check("read invoice", get_invoice.sync_detailed(account, first, client=c), 200)
        kinds = sorted(line.get("rated", {}).get("kind", "") for line in invoice["lines"])
        assert Decimal(invoice["total"]) > 0 and invoice["status"] == "open", invoice
        print(f"invoice {invoice['number']}: lines {kinds}, total {invoice['total']} {invoice['currency']}")
        assert any(line.get("provider_id") == PROVIDER for line in invoice["lines"]), invoice["lines"]

        _, statements = check("list provider statements", list_statements.sync_detailed(
            PROVIDER, client=c, period_from=start, period_to=hour + dt.timedelta(hours=1)), 200)
        entry = next(e for e in statements["data"] if e["invoice_id"] == first)
        _, one = check("read provider statement", get_statement.sync_detailed(
            PROVIDER, entry["statement_id"], client=c), 200)
        print(f"statement {one['statement_id']}: {json.dumps(one['statement'])}")

        _, note = check("issue credit note", create_credit_note.sync_detailed(account, first, client=c,
            body=NewCreditNote.from_dict({"amount": "1.00", "reason": "order_change", "memo": "flow",
                                          "credit_note_id": f"cn_{run}"})), 201)
        check("read credit note", get_credit_note.sync_detailed(account, note["credit_note_id"], client=c), 200)
        _, notes = check("list credit notes", list_credit_notes.sync_detailed(account, client=c), 200)
        assert [n["credit_note_id"] for n in notes["data"]] == [note["credit_note_id"]], notes
        _, after = check("read invoice after the note", get_invoice.sync_detailed(account, first, client=c), 200)
        assert Decimal(after["outstanding"]) == Decimal(invoice["outstanding"]) - Decimal("1.00"), after
    print("client flow: every call made and read through the generated client")


if __name__ == "__main__":
    main(*sys.argv[1:])
