"""Closes a billing cycle on the local stack the way AWS would, for the contract run and the
client flow: seeds the sample price books (in force since 2020, so that usage of the last hours
is priced; the API refuses books that start in the past) with an account and an hourly
subscription that billing-admin writes, runs the usage queue through the ingestion function, invokes
cycle-close as its schedule would and runs the close queue through the close-worker function
(the local event source mappings of scripts/demo.py)."""
import datetime as dt
import json
import os
import sys

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # noqa: E402  (the local event source mapping and billing-admin)


def hour(now=None):
    """The start of the current hour (UTC)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.replace(minute=0, second=0, microsecond=0)


def seed_sample(stack, account, subscription, anchor):
    """The sample books, fees and tax rates, and `account` with an hourly subscription from `anchor`."""
    demo.admin(stack, "seed-sample", "--account", account, "--subscription", subscription, "--cadence",
               "hourly", "--alignment", "anniversary", "--anchor", demo.iso(anchor), "--currency", "USD")


def ingest(stack, watch):
    """Runs the usage queue through the ingestion function until it is empty."""
    region = os.environ["AWS_REGION"]
    sqs = boto3.client("sqs", region_name=region, endpoint_url=stack["endpoint"])
    return demo.event_source_mapping(sqs, demo.source_of(stack, "UsageIngestFunction"), watch, region)


def close(stack, watch):
    """cycle-close as its schedule fires it, then the close queue through close-worker."""
    region = os.environ["AWS_REGION"]
    scheduled = {"version": "0", "id": "close-schedule", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": demo.iso(dt.datetime.now(dt.timezone.utc)), "region": region,
                 "resources": [f"arn:aws:events:{region}:123456789012:rule/CycleClose"], "detail": {}}
    status, out = demo.http("POST", f"{watch}/2015-03-31/functions/cycle-close/invocations", scheduled)
    if status != 200:
        sys.exit(f"cycle-close failed: {status} {out}")
    sqs = boto3.client("sqs", region_name=region, endpoint_url=stack["endpoint"])
    stats = demo.event_source_mapping(sqs, demo.source_of(stack, "CloseWorkerFunction"), watch, region)
    return out, stats


def load(path):
    return json.load(open(path))
