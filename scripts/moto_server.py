#!/usr/bin/env python3
"""Starts moto_server (the local DynamoDB / SQS / EventBridge endpoint) with two fixes to its
DynamoDB TransactWriteItems, so that it behaves like DynamoDB under load:

- isolation: moto runs requests on threads and does not isolate transactions from each other;
  DynamoDB does. Transactions here run one at a time.
- speed: moto backs up a table once per item of a transaction (to roll back on failure), which
  makes a 100-item transaction copy the table 100 times. Here it is copied once per table.

Neither changes what a transaction does or returns. Arguments are moto_server's.
"""
import copy
import sys
import threading

from moto.dynamodb import models as ddb_models

_local = threading.local()
_transaction_lock = threading.Lock()


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

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
