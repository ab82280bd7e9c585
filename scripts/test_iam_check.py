"""Tests of scripts/iam_check.py on a fixture template and call log (scripts/fixtures/iam):
it passes when the role allows exactly what was called, and fails, naming the function, the
action and the resource, when a call is not allowed or a grant is not used.

    .venv/bin/python -m unittest scripts/test_iam_check.py
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import iam_check  # noqa: E402

FIXTURE = os.path.join(HERE, "fixtures", "iam")
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/ItemsTable"


class Fixture:
    """A copy of the fixture that a test may change."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="iam-check-")
        for name in ("template.yaml", "calls.jsonl", "allowlist.yaml"):
            shutil.copy(os.path.join(FIXTURE, name), self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def edit(self, name, old, new):
        with open(self.path(name)) as f:
            text = f.read()
        assert old in text, f"{old!r} not in {name}"
        with open(self.path(name), "w") as f:
            f.write(text.replace(old, new))

    def append_call(self, call):
        with open(self.path("calls.jsonl"), "a") as f:
            f.write(json.dumps(call) + "\n")

    def run(self, calls_only=False):
        problems, _ = iam_check.run(
            self.path("template.yaml"), self.path("calls.jsonl"), self.path("allowlist.yaml"), calls_only
        )
        return problems

    def close(self):
        shutil.rmtree(self.dir)


class IamCheckTest(unittest.TestCase):
    def setUp(self):
        self.f = Fixture()
        self.addCleanup(self.f.close)

    def test_a_role_that_allows_exactly_the_calls_passes(self):
        self.assertEqual(self.f.run(), [])

    def test_a_call_the_role_does_not_allow_fails_naming_function_action_and_resource(self):
        # The transaction's condition check is authorized as ConditionCheckItem on the table.
        self.f.edit("template.yaml", "                - dynamodb:ConditionCheckItem\n", "")
        self.assertEqual(
            self.f.run(calls_only=True),
            [
                f"WorkerFunction: dynamodb:ConditionCheckItem on {TABLE} is not allowed by its role "
                "(recorded: TransactWriteItems x1)"
            ],
        )

    def test_a_query_on_an_index_needs_the_index_arn(self):
        self.f.edit("template.yaml", '!Sub "${ItemsTable.Arn}/index/ByIndex"', "!GetAtt ItemsTable.Arn")
        problems = self.f.run()
        self.assertIn(
            f"WorkerFunction: dynamodb:Query on {TABLE}/index/ByIndex is not allowed by its role (recorded: Query x1)",
            problems,
        )
        self.assertIn(f"WorkerFunction: allows dynamodb:Query on {TABLE}, which no test used (WorkerFunctionRolePolicy0)", problems)

    def test_a_grant_no_call_used_fails_naming_function_action_and_resource(self):
        self.f.edit("template.yaml", "                - dynamodb:GetItem\n", "                - dynamodb:GetItem\n                - dynamodb:DeleteItem\n")
        self.assertEqual(
            self.f.run(),
            [f"WorkerFunction: allows dynamodb:DeleteItem on {TABLE}, which no test used (WorkerFunctionRolePolicy0)"],
        )
        self.assertEqual(self.f.run(calls_only=True), [], "unused grants are not checked after part of the suite")

    def test_a_wildcard_fails_unless_allow_listed_with_a_reason(self):
        self.f.edit("template.yaml", "Action: sqs:SendMessage\n", "Action: sqs:SendMessage*\n")
        self.assertEqual(
            self.f.run(),
            [
                "WorkerFunction: allows sqs:SendMessage* on arn:aws:sqs:us-east-1:123456789012:WorkQueue, a wildcard "
                "(WorkerFunctionRolePolicy0): name each action and resource"
            ],
        )
        self.f.edit(
            "allowlist.yaml",
            "grants: []",
            "grants:\n  - function: WorkerFunction\n    action: sqs:SendMessage*\n"
            "    resource: arn:aws:sqs:us-east-1:123456789012:WorkQueue\n    reason: a test of the allow-list\n",
        )
        self.assertEqual(self.f.run(), [])

    def test_an_allow_list_entry_that_matches_nothing_fails(self):
        self.f.edit(
            "allowlist.yaml",
            "grants: []",
            "grants:\n  - function: WorkerFunction\n    action: sqs:ReceiveMessage\n"
            "    resource: arn:aws:sqs:us-east-1:123456789012:WorkQueue\n    reason: no longer granted\n",
        )
        problems = self.f.run()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("WorkerFunction sqs:ReceiveMessage", problems[0])
        self.assertIn("matches no grant", problems[0])

    def test_a_function_without_any_recorded_call_fails(self):
        with open(self.f.path("calls.jsonl"), "w"):
            pass
        problems = self.f.run()
        self.assertIn("WorkerFunction: no test recorded a call of this function", problems)

    def test_a_call_on_a_resource_outside_the_template_is_an_error(self):
        self.f.append_call({"function": "WorkerFunction", "service": "DynamoDB", "operation": "GetItem",
                            "resources": [{"table": "t-1-0-OtherTable"}]})
        with self.assertRaises(iam_check.CheckError):
            self.f.run()

    def test_an_operation_without_a_mapping_is_an_error(self):
        self.f.append_call({"function": "WorkerFunction", "service": "DynamoDB", "operation": "ExecuteStatement",
                            "resources": [{"table": "t-1-0-ItemsTable"}]})
        with self.assertRaises(iam_check.CheckError):
            self.f.run()


if __name__ == "__main__":
    unittest.main()
