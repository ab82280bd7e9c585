#!/usr/bin/env python3
"""Starts moto_server (the local DynamoDB / SQS / EventBridge endpoint) with fixes to its DynamoDB
writes, so that it behaves like DynamoDB under load:

- isolation: moto runs requests on threads and does not isolate transactions from each other,
  nor a conditional write's check from its write; DynamoDB does. Transactions and single-item
  writes (PutItem, UpdateItem, DeleteItem) here run one at a time, so of two concurrent
  conditional puts of one key exactly one succeeds, as on DynamoDB.
- speed: moto backs up every table a transaction touches (a deep copy of the whole table, once
  per item of the transaction) so that it can roll back when a condition fails. Here the
  transaction's conditions are checked first, against the state before it (as DynamoDB does:
  a transaction names each item once, so no write of it can change another item's check); when
  they all hold, moto applies it without copying anything, and only a transaction that will be
  cancelled takes moto's own path, with the table copied once per table.

Neither changes what a transaction does or returns. Arguments are moto_server's.
"""
import copy
import sys
import threading

from moto.dynamodb import models as ddb_models

_local = threading.local()
_transaction_lock = threading.RLock()


class _CopyOncePerTransaction:
    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(obj, memo=None):
        cache = getattr(_local, "backups", None)
        if cache is None:
            return copy.deepcopy(obj, memo)
        if cache is _NO_BACKUP:
            return obj
        if id(obj) not in cache:
            cache[id(obj)] = copy.deepcopy(obj, memo)
        return cache[id(obj)]


_NO_BACKUP = object()


def _conditions_hold(backend, transact_items):
    """Whether every condition of the transaction holds on the current state (None: unsure)."""
    seen = set()
    try:
        for item in transact_items:
            if len(item) != 1:
                return None
            op_type, op = next(iter(item.items()))
            if op_type not in ("ConditionCheck", "Put", "Delete", "Update"):
                return None
            table = backend.get_table(op["TableName"])
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            # An item named twice is a validation error: moto's own path reports it.
            unique = (op["TableName"], str(sorted((k, str(v)) for k, v in key.items())))
            if unique in seen:
                return None
            seen.add(unique)
            condition = op.get("ConditionExpression")
            if condition is None:
                continue
            current = backend.get_item(op["TableName"], key)
            check = ddb_models.get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                return False
        return True
    except Exception:  # anything unusual: let moto's own path decide and report it
        return None


ddb_models.copy = _CopyOncePerTransaction()
_transact_write_items = ddb_models.DynamoDBBackend.transact_write_items


def _isolated_transact_write_items(self, transact_items):
    with _transaction_lock:
        _local.backups = _NO_BACKUP if _conditions_hold(self, transact_items) is True else {}
        try:
            return _transact_write_items(self, transact_items)
        finally:
            _local.backups = None


ddb_models.DynamoDBBackend.transact_write_items = _isolated_transact_write_items


def _serialized(method):
    def run(self, *args, **kwargs):
        with _transaction_lock:
            return method(self, *args, **kwargs)

    return run


for _name in ("put_item", "update_item", "delete_item"):
    setattr(ddb_models.DynamoDBBackend, _name, _serialized(getattr(ddb_models.DynamoDBBackend, _name)))

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
