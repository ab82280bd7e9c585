#!/usr/bin/env python3
"""Starts moto_server (the local DynamoDB / SQS / EventBridge endpoint) with fixes to its DynamoDB
writes, so that it behaves like DynamoDB under load:

- isolation: moto runs requests on threads and does not isolate transactions from each other,
  nor a conditional write's check from its write; DynamoDB does. Transactions and single-item
  writes (PutItem, UpdateItem, DeleteItem) here run one at a time, so of two concurrent
  conditional puts of one key exactly one succeeds, as on DynamoDB.
- speed: moto backs up a table once per item of a transaction (to roll back on failure), which
  makes a 100-item transaction copy the table 100 times. Here it is copied once per table.

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
        if id(obj) not in cache:
            cache[id(obj)] = copy.deepcopy(obj, memo)
        return cache[id(obj)]


ddb_models.copy = _CopyOncePerTransaction()
_transact_write_items = ddb_models.DynamoDBBackend.transact_write_items


def _isolated_transact_write_items(self, transact_items):
    with _transaction_lock:
        _local.backups = {}
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
