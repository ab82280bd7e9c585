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

- size: moto answers a Query by sorting every item of the table (a Python sort of DynamoType
  keys) and then keeping the items of one partition or index key, so a Query costs ~0.2 s per
  20,000 items and the 10,000-account benchmark spent seconds per close in it. Here a Query on
  the table reads only its partition, and a Query on an index reads the items unsorted (moto
  sorts the index's candidates by the index key and the table key afterwards, a total order, so
  the input order never mattered). A transaction whose conditions do not all hold, which moto
  rolls back by restoring a deep copy of every table it touches, instead runs moto's own path
  after copying just the items it names, and on cancellation puts those back. SendMessage
  and ReceiveMessage no longer count the queue's messages for attributes they do not read
  (see below).

None of this changes what a request does or returns. Arguments are moto_server's.

With METERLINE_MOTO_FAULTS=1 it also behaves like DynamoDB under contention: it cancels
transactions that overlap another request on an item, throttles a fraction of requests and
serves index queries that lag the table (scripts/moto_faults.py, docs/testing.md).
"""
import copy
import os
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


def _named_items(backend, transact_items):
    """(table, hash key, range key) of every item the transaction names (None: unsure)."""
    named = []
    try:
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            table = backend.get_table(op["TableName"])
            key = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = ddb_models.DynamoType(key[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                range_key = ddb_models.DynamoType(key[table.range_key_attr])
            named.append((table, hash_key, range_key))
        return named
    except Exception:
        return None


def _snapshot(named):
    """A deep copy of each named item as it is now (None where absent)."""
    return [
        (table, h, r, copy.deepcopy(table.get_item(h, r)))
        for table, h, r in named
    ]


def _restore(snapshot):
    # Backwards, so that an item named twice (moto rejects that anyway) ends as it was first.
    for table, h, r, before in reversed(snapshot):
        if r is None:
            if before is None:
                table.items.pop(h, None)
            else:
                table.items[h] = before
        elif before is None:
            partition = table.items.get(h)
            if partition is not None:
                partition.pop(r, None)
                if not partition:
                    table.items.pop(h, None)
        else:
            table.items[h][r] = before


def _isolated_transact_write_items(self, transact_items):
    with _transaction_lock:
        holds = _conditions_hold(self, transact_items)
        named = _named_items(self, transact_items) if holds is False else None
        if holds is True:
            _local.backups = _NO_BACKUP
        elif named is not None:
            # Cancelled for certain: moto's path, rolled back from copies of the named items.
            _local.backups = _NO_BACKUP
            snapshot = _snapshot(named)
            try:
                return _transact_write_items(self, transact_items)
            except BaseException:
                _restore(snapshot)
                raise
            finally:
                _local.backups = None
        else:
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

# The fault mode's view of an index (None: the index is up to date); see moto_faults.py.
_index_view = None

_Table = ddb_models.Table
_table_query = _Table.query
_table_all_items = _Table.all_items


def _scoped_all_items(self):
    """During a Query of this table: the candidate items that Query would keep (see above)."""
    scope = getattr(_local, "query", None)
    if scope is None or scope[0] is not self:
        return _table_all_items(self)
    hash_key = scope[1]
    if hash_key is None:
        # An index query: every item, unsorted (the query sorts its matches itself). list() of
        # a dict view runs without releasing the GIL, so a concurrent write cannot break it.
        partitions = list(self.items.values())
        if self.range_key_attr is None:
            items = partitions
        else:
            items = []
            for partition in partitions:
                items.extend(list(partition.values()))
        # In fault mode, what a lagging index still shows (see moto_faults.py).
        return items if _index_view is None else _index_view(self, items)
    # A table query: the partition alone (the query sorts it by range key and keeps only the
    # items of that hash key).
    partition = self.items.get(hash_key)
    if partition is None:
        return []
    if self.range_key_attr is None:
        return [partition]
    return list(partition.values())


def _scoped_query(self, hash_key, *args, **kwargs):
    index_name = kwargs.get("index_name") if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
    if index_name is None and hash_key is None:
        return _table_query(self, hash_key, *args, **kwargs)
    _local.query = (self, None if index_name else hash_key)
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        _local.query = None


_Table.query = _scoped_query
_Table.all_items = _scoped_all_items

# SQS: moto's SendMessage reads the queue's attributes (for ContentBasedDeduplication), which
# counts the queue's messages three times, so queueing n messages costs O(n^2): 10,000 close
# requests took many minutes. While a message is being sent the three counts, which the send
# never reads, are not computed; GetQueueAttributes and everything else still count.
from moto.sqs import models as sqs_models  # noqa: E402

_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def _uncounted_while_sending(prop):
    def get(self):
        if getattr(_local, "sending", False):
            return 0
        return prop.fget(self)

    return property(get)


for _name in _COUNTS:
    setattr(sqs_models.Queue, _name, _uncounted_while_sending(getattr(sqs_models.Queue, _name)))
_send_message = sqs_models.SQSBackend.send_message


def _sending(self, *args, **kwargs):
    _local.sending = True
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _local.sending = False


sqs_models.SQSBackend.send_message = _sending

# ReceiveMessage checks each candidate message's retention by reading every queue attribute,
# counts included: O(n) per message, so a receive from a queue of 10,000 took seconds. The
# check reads only MessageRetentionPeriod; it runs without the counts too.
_retention_check = sqs_models.SQSBackend.is_message_valid_based_on_retention_period


def _retention_check_uncounted(self, *args, **kwargs):
    _local.sending = True
    try:
        return _retention_check(self, *args, **kwargs)
    finally:
        _local.sending = False


sqs_models.SQSBackend.is_message_valid_based_on_retention_period = _retention_check_uncounted

if os.environ.get("METERLINE_MOTO_FAULTS") == "1":
    # The fault mode (docs/testing.md): transaction conflicts, throttling, lagging indexes.
    import moto_faults  # noqa: E402  (beside this script)

    _index_view = moto_faults.install(_transaction_lock)

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
