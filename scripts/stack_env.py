#!/usr/bin/env python3
"""Prints `export NAME=value` lines for `meterline ops`: every function's environment variables
(table names, queue URLs, bus, FX_* settings) and the dead-letter queues' URLs, for a deployed
stack (read with boto3: CloudFormation and Lambda) or for the local stack that scripts/stack.py
created.

    eval "$(.venv/bin/python scripts/stack_env.py --stack meterline)"
    eval "$(.venv/bin/python scripts/stack_env.py --local .local/stack.json)"
    meterline ops redrive --queue close
"""
import argparse
import json
import shlex

# Dead-letter queues by logical id, and the variable `meterline ops` reads each from.
DEAD_LETTERS = {
    "UsageDeadLetterQueue": "USAGE_DLQ_URL",
    "CloseDeadLetterQueue": "CLOSE_DLQ_URL",
    "PaymentResultDeadLetterQueue": "PAYMENT_RESULT_DLQ_URL",
}
# Values that differ between functions and would be wrong for the tool.
SKIP = {"RUST_LOG"}


def merged(functions_env, queues):
    env = {}
    for variables in functions_env:
        for k, v in variables.items():
            if k not in SKIP:
                env.setdefault(k, v)
    for logical, var in DEAD_LETTERS.items():
        if logical in queues:
            env[var] = queues[logical]
    return env


def from_local(path):
    stack = json.load(open(path))
    return merged([f["env"] for f in stack["functions"].values()], stack["resources"])


def from_aws(name):
    import boto3

    cfn, lam = boto3.client("cloudformation"), boto3.client("lambda")
    resources = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
        resources.extend(page["StackResourceSummaries"])
    queues = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources
              if r["ResourceType"] == "AWS::SQS::Queue"}
    envs = [lam.get_function_configuration(FunctionName=r["PhysicalResourceId"]).get("Environment", {})
            .get("Variables", {}) for r in resources if r["ResourceType"] == "AWS::Lambda::Function"]
    return merged(envs, queues)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--stack", help="a deployed stack's name")
    src.add_argument("--local", help="the JSON scripts/stack.py create printed")
    args = ap.parse_args()
    env = from_aws(args.stack) if args.stack else from_local(args.local)
    for k in sorted(env):
        print(f"export {k}={shlex.quote(str(env[k]))}")


if __name__ == "__main__":
    main()
