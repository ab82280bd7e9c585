#!/usr/bin/env python3
"""Least privilege, checked against the AWS calls the functions make in the tests.

The integration tests record every AWS call each function makes (the SDK interceptor in
shared/src/aws/calls.rs, one JSON line per call in .local/aws-calls.jsonl). This script expands
infra/template.yaml as CloudFormation will (the SAM translator turns each
AWS::Serverless::Function's policies into a plain IAM role), resolves the template's own
references to stand-in ARNs, and fails when:

  (a) a recorded call is not allowed by the role of the function that made it (action and
      resource: a Query on an index needs the index's ARN, a transaction each item's action);
  (b) a role allows an action on a resource that no recorded call used, or allows a wildcard,
      unless infra/iam-allowlist.yaml lists that grant with its reason (what the Lambda service
      does with the role, which no test can do locally).

    iam_check.py                  # both checks (after the whole suite)
    iam_check.py --calls-only     # (a) only (after part of the suite)

See docs/security.md, "Least privilege (IAM)".
"""
import argparse
import json
import logging
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "meterline",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/meterline/stand-in",
    "AWS::NoValue": None,
}

# The AWS managed policies SAM attaches, as AWS publishes them (a role's managed policy not in
# this table cannot be checked, and fails the check).
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        },
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
}

# The parameter naming the one secret the functions read (the bootstrap operator key).
SECRET_PARAMETER = "BootstrapOperatorKeySecret"
SERVICE_PREFIX = {"DynamoDB": "dynamodb", "SQS": "sqs", "EventBridge": "events", "SSM": "ssm", "Secrets Manager": "secretsmanager"}
# Operations authorized as another action (the batch forms of SQS's calls).
ACTION_OF = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# A transaction's items are authorized one by one, each as its own action.
TRANSACT_ITEM = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
KNOWN = {
    "dynamodb": {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
                 "TransactWriteItems", "TransactGetItems", "DescribeTable"},
    "sqs": {"SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
            "ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "GetQueueAttributes", "GetQueueUrl"},
    "events": {"PutEvents"},
    "ssm": {"GetParameter", "GetParameters"},
    "secretsmanager": {"GetSecretValue", "DescribeSecret"},
}


class CheckError(Exception):
    """The template or the call log cannot be checked (not a finding: a broken input)."""


# --- the template, as CloudFormation will see it ----------------------------------------------

def expand(template_path):
    """The template after the SAM transform (as `sam deploy` sends it: code uploaded to S3)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # The translator warns of its unpublished usage metrics: nothing to do with the template.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    with open(template_path) as f:
        template = yaml_parse(f.read())
    for r in template.get("Resources", {}).values():
        if r.get("Type") == "AWS::Serverless::Function":
            r.setdefault("Properties", {})["CodeUri"] = "s3://stand-in-bucket/code.zip"

    class NoManagedPolicyNames:
        def load(self):
            return {}

    return transform(template, {}, NoManagedPolicyNames())


class Resolver:
    """Resolves the intrinsic functions of a policy to stand-in values: a resource's physical
    name is its logical id, a parameter its default."""

    def __init__(self, cfn):
        self.resources = cfn.get("Resources", {})
        self.parameters = cfn.get("Parameters", {})

    def type_of(self, logical):
        return self.resources.get(logical, {}).get("Type")

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            # A parameter without a default value stands for itself (its name).
            return str(self.parameters[name].get("Default") or name)
        kind = self.type_of(name)
        if kind is None:
            raise CheckError(f"!Ref {name}: no such parameter or resource")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
        return name

    def get_att(self, logical, attr):
        kind = self.type_of(logical)
        arns = {
            ("AWS::DynamoDB::Table", "Arn"): f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical}",
            ("AWS::SQS::Queue", "Arn"): f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical}",
            ("AWS::SQS::Queue", "QueueName"): logical,
            ("AWS::SQS::Queue", "QueueUrl"): self.ref(logical) if kind == "AWS::SQS::Queue" else None,
            ("AWS::Events::EventBus", "Arn"): f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{logical}",
            ("AWS::Events::EventBus", "Name"): logical,
            ("AWS::Lambda::Function", "Arn"): f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}",
            ("AWS::IAM::Role", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/{logical}",
            ("AWS::SSM::Parameter", "Name"): logical,
        }
        value = arns.get((kind, attr))
        if value is None:
            raise CheckError(f"!GetAtt {logical}.{attr} ({kind}): no stand-in for it")
        return value

    def sub(self, text, variables):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and name not in self.parameters and name not in PSEUDO:
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, v):
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (key, arg), = v.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical, attr)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, variables)
            if key == "Fn::Join":
                return arg[0].join(str(x) for x in self.resolve(arg[1]))
            if key == "Fn::If":
                # The grant as deployed with its condition met: what the calls may need.
                return self.resolve(arg[1])
            if key.startswith("Fn::") or key == "Condition":
                raise CheckError(f"{key} is not supported in a policy")
        return {k: self.resolve(x) for k, x in v.items()}


def as_list(v):
    return v if isinstance(v, list) else [v]


def function_roles(cfn):
    """Each function's statements: {function: [(source, statement)]}, resolved."""
    res = Resolver(cfn)
    resources = cfn.get("Resources", {})
    attached = defaultdict(list)  # role -> [(source, document)] from AWS::IAM::Policy resources
    for logical, r in resources.items():
        if r.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role in as_list(r["Properties"].get("Roles", [])):
                attached[res.resolve(role)].append((logical, r["Properties"]["PolicyDocument"]))
    roles = {}
    for logical, r in resources.items():
        if r.get("Type") != "AWS::Lambda::Function":
            continue
        role_ref = r["Properties"].get("Role")
        if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
            raise CheckError(f"{logical}: its role is not one of the template's ({role_ref!r})")
        role_id = role_ref["Fn::GetAtt"][0] if isinstance(role_ref["Fn::GetAtt"], list) else role_ref["Fn::GetAtt"].split(".")[0]
        role = resources[role_id]["Properties"]
        docs = [(p["PolicyName"], p["PolicyDocument"]) for p in role.get("Policies", [])]
        docs += attached.get(role_id, [])
        statements = []
        for source, doc in docs:
            statements += [(source, s) for s in as_list(res.resolve(doc).get("Statement", []))]
        for arn in role.get("ManagedPolicyArns", []):
            arn = res.resolve(arn)
            if arn not in MANAGED:
                raise CheckError(f"{logical}: managed policy {arn} is not known to this check")
            statements += [(arn, s) for s in MANAGED[arn]]
        for source, s in statements:
            unsupported = set(s) - {"Sid", "Effect", "Action", "Resource"}
            if unsupported:
                raise CheckError(f"{logical} ({source}): {sorted(unsupported)} are not supported by this check")
        roles[logical] = statements
    return roles


# --- the calls ----------------------------------------------------------------------------------

class Names:
    """Maps the names the tests used (`{prefix}-{LogicalId}`) to the template's resources."""

    def __init__(self, template_resources):
        self.by_type = defaultdict(set)
        for logical, r in template_resources.items():
            self.by_type[r.get("Type")].add(logical)

    def logical(self, kind, physical):
        name = physical.rsplit("/", 1)[-1]
        candidate = name.rsplit("-", 1)[-1]
        for n in (name, candidate):
            if n in self.by_type[kind]:
                return n
        return None


def required(call, names, bus_parameter_value):
    """The (action, resource ARN) pairs IAM checks for one recorded call."""
    prefix = SERVICE_PREFIX.get(call["service"])
    op = call["operation"]
    if prefix is None or op not in KNOWN.get(prefix, ()):
        raise CheckError(f"no IAM mapping for {call['service']} {op}: add it to scripts/iam_check.py")
    out = []
    for r in call.get("resources", []):
        if prefix == "dynamodb":
            table = names.logical("AWS::DynamoDB::Table", r["table"])
            if table is None:
                raise CheckError(f"{call['function']} called {op} on table {r['table']}, which the template does not define")
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
            if r.get("index"):
                arn += f"/index/{r['index']}"
            action = TRANSACT_ITEM[r["item"]] if "item" in r else op
            out.append((f"dynamodb:{action}", arn))
        elif prefix == "sqs":
            queue = names.logical("AWS::SQS::Queue", r["queue"])
            if queue is None:
                raise CheckError(f"{call['function']} called {op} on queue {r['queue']}, which the template does not define")
            out.append((ACTION_OF.get(f"sqs:{op}", f"sqs:{op}"), f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"))
        elif prefix == "events":
            bus = r["bus"].split("event-bus/")[-1]
            # A bus the template does not define is the one a parameter names: the tests give
            # each function a bus of their own to read its events from.
            bus = names.logical("AWS::Events::EventBus", bus) or (bus if bus == "default" else bus_parameter_value)
            out.append(("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"))
        elif prefix == "ssm":
            name = names.logical("AWS::SSM::Parameter", r["parameter"]) or r["parameter"].lstrip("/")
            out.append((f"ssm:{op}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}"))
        elif prefix == "secretsmanager":
            # A secret the template does not define is the one its parameter names (the
            # bootstrap operator key's): the grant's resource is that parameter.
            name = names.logical("AWS::SecretsManager::Secret", r["secret"])
            out.append((f"secretsmanager:{op}",
                        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}" if name else SECRET_PARAMETER))
    if not out:
        raise CheckError(f"{call['function']} {call['service']} {op}: the record names no resource")
    return out


def load_calls(path, names, bus_parameter_value):
    """{function: {(action, arn): {operation: count}}}."""
    calls = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                call = json.loads(line)
            except json.JSONDecodeError as e:
                raise CheckError(f"{path}:{n}: not JSON: {e}")
            for need in required(call, names, bus_parameter_value):
                calls[call["function"]][need][call["operation"]] += 1
    return calls


# --- the checks ---------------------------------------------------------------------------------

def glob(pattern, value, ignore_case=False):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def allows(statement, action, arn):
    return any(glob(a, action, ignore_case=True) for a in as_list(statement["Action"])) and any(
        glob(r, arn) for r in as_list(statement["Resource"])
    )


def check_calls(roles, calls):
    """(a): every recorded call allowed by its function's role."""
    problems = []
    for function in sorted(calls):
        if function not in roles:
            problems.append(f"{function}: calls were recorded for a function the template does not define")
            continue
        statements = [s for _, s in roles[function]]
        for (action, arn), ops in sorted(calls[function].items()):
            denied = any(s["Effect"] == "Deny" and allows(s, action, arn) for s in statements)
            allowed = any(s["Effect"] == "Allow" and allows(s, action, arn) for s in statements)
            if denied or not allowed:
                seen = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))
                problems.append(f"{function}: {action} on {arn} is not allowed by its role (recorded: {seen})")
    return problems


def check_grants(roles, calls, allowlist):
    """(b): every grant used by a recorded call, named without wildcards, or allow-listed."""
    problems = []
    used_entries = set()
    for function in sorted(roles):
        if not calls.get(function):
            problems.append(f"{function}: no test recorded a call of this function")
        used = {(a.lower(), r) for a, r in calls.get(function, {})}
        grants = {}
        for source, s in roles[function]:
            if s["Effect"] != "Allow":
                continue
            for action in as_list(s["Action"]):
                for resource in as_list(s["Resource"]):
                    grants.setdefault((action, resource), source)
        for (action, resource), source in sorted(grants.items()):
            entry = allowlisted(allowlist, function, source, action, resource)
            if entry is not None:
                used_entries.add(entry)
            elif "*" in action + resource or "?" in action + resource:
                problems.append(f"{function}: allows {action} on {resource}, a wildcard ({source}): name each action and resource")
            elif (action.lower(), resource) not in used:
                problems.append(f"{function}: allows {action} on {resource}, which no test used ({source})")
    for i, e in enumerate(allowlist):
        if i not in used_entries:
            problems.append(f"infra/iam-allowlist.yaml: entry {describe(e)} matches no grant of the template: remove it")
    return problems


def allowlisted(allowlist, function, source, action, resource):
    for i, e in enumerate(allowlist):
        if "managed_policy" in e:
            if e["managed_policy"] == source:
                return i
        elif (e["function"] in ("*", function) and e["action"].lower() == action.lower()
              and e["resource"] == resource):
            return i
    return None


def describe(e):
    if "managed_policy" in e:
        return e["managed_policy"]
    return f"{e['function']} {e['action']} {e['resource']}"


def load_allowlist(path):
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    entries = []
    for e in doc.get("managed_policies", []):
        entries.append({"managed_policy": e["arn"], "reason": e["reason"]})
    for e in doc.get("grants", []):
        entries.append({k: e[k] for k in ("function", "action", "resource", "reason")})
    for e in entries:
        if not str(e.get("reason", "")).strip():
            raise CheckError(f"{path}: {describe(e)} has no reason")
    return entries


def run(template, calls_path, allowlist_path, calls_only=False, bus_parameter="EventBusName"):
    """The problems found, and a one-line summary."""
    cfn = expand(template)
    roles = function_roles(cfn)
    bus_value = str(cfn.get("Parameters", {}).get(bus_parameter, {}).get("Default", bus_parameter))
    calls = load_calls(calls_path, Names(cfn.get("Resources", {})), bus_value)
    problems = check_calls(roles, calls)
    if not calls_only:
        problems += check_grants(roles, calls, load_allowlist(allowlist_path))
    distinct = sum(len(c) for c in calls.values())
    summary = f"{len(roles)} functions, {distinct} distinct (action, resource) pairs called"
    return problems, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=os.path.join(ROOT, "infra", "template.yaml"))
    ap.add_argument("--calls", default=os.path.join(ROOT, ".local", "aws-calls.jsonl"))
    ap.add_argument("--allowlist", default=os.path.join(ROOT, "infra", "iam-allowlist.yaml"))
    ap.add_argument("--calls-only", action="store_true", help="check (a) only: part of the suite ran")
    args = ap.parse_args()
    if not os.path.exists(args.calls):
        sys.exit(f"iam check: {args.calls} does not exist: run the tests with scripts/test.sh first")
    try:
        problems, summary = run(args.template, args.calls, args.allowlist, args.calls_only)
    except CheckError as e:
        sys.exit(f"iam check: {e}")
    for p in problems:
        print(f"iam check: {p}", file=sys.stderr)
    if problems:
        n = len(problems)
        sys.exit(f"iam check: FAILED, {n} problem{'' if n == 1 else 's'} ({summary})")
    print(f"iam check: ok, {summary}{' (recorded calls only)' if args.calls_only else ''}")


if __name__ == "__main__":
    main()
