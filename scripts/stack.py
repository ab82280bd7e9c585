#!/usr/bin/env python3
"""Creates the template's tables, queues and event buses on the local AWS endpoint, from
infra/template.yaml.

The SAM template is the one list of resources: this script reads it, creates each DynamoDB
table, SQS queue and EventBridge bus (with its resource policy) under a name prefix, and each
function's EventBridge rule on its bus (without a target: no function runs on the endpoint);
every other resource type, such as alarms, log groups and the dashboard, needs nothing locally
and is left out. It prints (as JSON) what the functions need: each function's environment
variables as the template defines them, resolved to the local names, each SQS event source
mapping, and the parameters.

    stack.py create --prefix demo      # prints the stack as JSON
    stack.py delete --prefix demo
"""
import argparse
import json
import os
import re
import sys

import boto3
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")
REGION = os.environ.get("AWS_REGION", "us-east-1")
ACCOUNT = "123456789012"


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def _construct(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return Tag(suffix, loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return Tag(suffix, loader.construct_sequence(node, deep=True))
    return Tag(suffix, loader.construct_mapping(node, deep=True))


class Loader(yaml.SafeLoader):
    pass


Loader.add_multi_constructor("!", _construct)


def load_template():
    with open(TEMPLATE) as f:
        return yaml.load(f, Loader=Loader)


class Stack:
    def __init__(self, template, prefix):
        self.t = template
        self.prefix = prefix
        self.resources = template["Resources"]
        self.physical = {}  # logical id -> name / url
        self.arns = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        kw = dict(region_name=REGION, endpoint_url=endpoint)
        self.ddb = boto3.client("dynamodb", **kw)
        self.sqs = boto3.client("sqs", **kw)
        self.events = boto3.client("events", **kw)

    def name(self, logical):
        return f"{self.prefix}-{logical}"

    def parameters(self):
        return {k: str(p.get("Default", "")) for k, p in self.t.get("Parameters", {}).items()}

    def condition(self, name):
        return bool(self.resolve(self.t["Conditions"][name]))

    def resolve(self, v):
        if isinstance(v, Tag):
            if v.tag == "Ref":
                if v.value in self.t.get("Parameters", {}):
                    return self.parameters()[v.value]
                if v.value == "AWS::AccountId":
                    return ACCOUNT
                if v.value == "AWS::Region":
                    return REGION
                return self.physical[v.value]
            if v.tag == "Equals":
                a, b = (self.resolve(x) for x in v.value)
                return a == b
            if v.tag == "Not":
                return not self.resolve(v.value[0])
            if v.tag == "If":
                name, yes, no = v.value
                return self.resolve(yes if self.condition(name) else no)
            if v.tag == "GetAtt":
                logical, attr = v.value.split(".", 1) if isinstance(v.value, str) else v.value
                if attr == "Arn":
                    return self.arns[logical]
                if attr == "QueueName":
                    return self.name(logical)
                if attr == "Name":
                    return self.physical[logical]
                raise ValueError(f"unsupported attribute {attr}")
            if v.tag == "Sub":
                return self.substitute(v.value)
            raise ValueError(f"unsupported tag !{v.tag}")
        if isinstance(v, dict):
            return {k: self.resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v

    def substitute(self, value):
        """`!Sub`: pseudo parameters (the prefix stands for the stack name), parameters and
        resources, as `Ref` and `GetAtt` resolve them."""
        text, extra = (value, {}) if isinstance(value, str) else (value[0], value[1])
        pseudo = {"AWS::StackName": self.prefix, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws"}

        def one(m):
            name = m.group(1)
            if name in extra:
                return str(self.resolve(extra[name]))
            if name in pseudo:
                return pseudo[name]
            if "." in name:
                return str(self.resolve(Tag("GetAtt", name)))
            return str(self.resolve(Tag("Ref", name)))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def of_type(self, kind):
        return [(k, r) for k, r in self.resources.items() if r["Type"] == kind]

    def create(self):
        for logical, r in self.of_type("AWS::DynamoDB::Table"):
            p = r["Properties"]
            name = self.name(logical)
            args = dict(
                TableName=name,
                KeySchema=p["KeySchema"],
                AttributeDefinitions=p["AttributeDefinitions"],
                BillingMode=p.get("BillingMode", "PAY_PER_REQUEST"),
            )
            if "GlobalSecondaryIndexes" in p:
                args["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
            try:
                self.ddb.create_table(**args)
            except self.ddb.exceptions.ResourceInUseException:
                pass
            ttl = p.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                self.ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
            self.physical[logical] = name
            self.arns[logical] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        queues = self.of_type("AWS::SQS::Queue")
        # Dead-letter queues first: a redrive policy names their ARN.
        queues.sort(key=lambda q: "RedrivePolicy" in q[1].get("Properties", {}))
        for logical, r in queues:
            p = self.resolve(r.get("Properties", {}))
            attrs = {}
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
                if key in p:
                    attrs[key] = str(p[key])
            if "RedrivePolicy" in p:
                attrs["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
            url = self.sqs.create_queue(QueueName=self.name(logical), Attributes=attrs)["QueueUrl"]
            self.physical[logical] = url
            self.arns[logical] = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        self.create_buses()
        return self.describe()

    def create_buses(self):
        """Event buses (named by prefix), their resource policies, and each function's
        EventBridge rules on their bus (targets are left out: no function runs here)."""
        for logical, _ in self.of_type("AWS::Events::EventBus"):
            name = self.name(logical)
            try:
                arn = self.events.create_event_bus(Name=name)["EventBusArn"]
            except self.events.exceptions.ResourceAlreadyExistsException:
                arn = self.events.describe_event_bus(Name=name)["Arn"]
            self.physical[logical] = name
            self.arns[logical] = arn
        for logical, r in self.of_type("AWS::Events::EventBusPolicy"):
            p = self.resolve(r["Properties"])
            statement = dict(p["Statement"], Sid=p["StatementId"])
            self.events.put_permission(
                EventBusName=p["EventBusName"],
                Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
            )
        for logical, r in self.of_type("AWS::Serverless::Function"):
            for ev_name, ev in r["Properties"].get("Events", {}).items():
                if ev["Type"] != "EventBridgeRule":
                    continue
                props = self.resolve(ev["Properties"])
                self.events.put_rule(
                    Name=self.name(f"{logical}-{ev_name}"),
                    EventBusName=props.get("EventBusName", "default"),
                    EventPattern=json.dumps(props["Pattern"]),
                )

    def describe(self):
        glob = self.t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        functions, sources = {}, []
        for logical, r in self.of_type("AWS::Serverless::Function"):
            env = dict(self.resolve(glob))
            env.update(self.resolve(r["Properties"].get("Environment", {}).get("Variables", {})))
            binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            functions[logical] = {"binary": binary, "env": {k: str(v) for k, v in env.items()}}
            for ev_name, ev in r["Properties"].get("Events", {}).items():
                if ev["Type"] == "SQS":
                    props = ev["Properties"]
                    queue_logical = props["Queue"].value.split(".")[0]
                    sources.append({
                        "function": logical,
                        "binary": binary,
                        "queue_url": self.physical[queue_logical],
                        "queue_arn": self.arns[queue_logical],
                        "batch_size": props.get("BatchSize", 10),
                        "report_batch_item_failures": "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    })
        return {
            "prefix": self.prefix,
            "region": REGION,
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "resources": self.physical,
            "functions": functions,
            "sqs_event_sources": sources,
            "parameters": self.parameters(),
        }

    def delete(self):
        for logical, r in self.of_type("AWS::Serverless::Function"):
            for ev_name, ev in r["Properties"].get("Events", {}).items():
                if ev["Type"] == "EventBridgeRule":
                    bus = ev["Properties"].get("EventBusName")
                    bus = self.name(bus.value) if isinstance(bus, Tag) else (bus or "default")
                    try:
                        self.events.delete_rule(Name=self.name(f"{logical}-{ev_name}"), EventBusName=bus)
                    except Exception:
                        pass
        for logical, _ in self.of_type("AWS::Events::EventBus"):
            try:
                self.events.delete_event_bus(Name=self.name(logical))
            except Exception:
                pass
        for logical, _ in self.of_type("AWS::DynamoDB::Table"):
            try:
                self.ddb.delete_table(TableName=self.name(logical))
            except Exception:
                pass
        for logical, _ in self.of_type("AWS::SQS::Queue"):
            try:
                url = self.sqs.get_queue_url(QueueName=self.name(logical))["QueueUrl"]
                self.sqs.delete_queue(QueueUrl=url)
            except Exception:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["create", "delete"])
    ap.add_argument("--prefix", default="meterline")
    args = ap.parse_args()
    if not os.environ.get("AWS_ENDPOINT_URL"):
        sys.exit("AWS_ENDPOINT_URL is not set: this script only creates resources on the local endpoint")
    stack = Stack(load_template(), args.prefix)
    if args.command == "create":
        print(json.dumps(stack.create(), indent=2))
    else:
        stack.delete()


if __name__ == "__main__":
    main()
