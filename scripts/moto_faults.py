"""The local endpoint's fault mode (docs/testing.md, "The local endpoint's fault mode").

scripts/moto_server.py imports this module when METERLINE_MOTO_FAULTS=1 and calls install().
Then the local DynamoDB behaves as DynamoDB does when many Lambda instances run at once:

- conflicts: a TransactWriteItems that names an item another request holds is cancelled with
  TransactionCanceledException, its CancellationReasons `TransactionConflict` for each such item
  and `None` for the others (DynamoDB's wire shape). A request holds the items it names from
  when it arrives until METERLINE_MOTO_CONFLICT_WINDOW_MS after it was answered; the earliest
  arrival wins, a cancelled transaction holds nothing. TransactWriteItems, PutItem, UpdateItem,
  DeleteItem and BatchWriteItem's puts and deletes hold items. A PutItem, UpdateItem or
  DeleteItem of an item a transaction holds fails with TransactionConflictException
  ("Transaction is ongoing for the item"), as on DynamoDB; the items of a BatchWriteItem do not
  (not modelled).
- throttling: a seeded fraction (METERLINE_MOTO_THROTTLE_RATE, seed METERLINE_MOTO_SEED) of
  data-plane requests is answered HTTP 400 ProvisionedThroughputExceededException or
  ThrottlingException, with DynamoDB's JSON error body.
- index lag: a Query on a secondary index sees each item as it was METERLINE_MOTO_INDEX_LAG_MS
  ago (an item written since is seen in its former version, or not at all if it is new; an item
  deleted since is still seen).
"""
import copy
import os
import random
import threading
import time

from moto.dynamodb import models as ddb_models
from moto.dynamodb import responses as ddb_responses
from moto.dynamodb.exceptions import DynamodbException, TransactionCanceledException

_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_THROTTLES = (
    (
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    ("ThrottlingException", "Rate of requests exceeds the allowed throughput."),
)
# The requests a throttle may answer: DynamoDB's data plane (not CreateTable, DescribeTable...).
_DATA_PLANE = (
    "get_item", "put_item", "update_item", "delete_item", "query", "scan", "batch_get_item",
    "batch_write_item", "transact_get_items", "transact_write_items",
)


def _setting(name, default):
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def _now():
    return time.monotonic()


class _Throttled(DynamodbException):
    def __init__(self, code, message):
        super().__init__(_PREFIX + code, message)


class _TransactionConflict(DynamodbException):
    """What DynamoDB answers a single-item write of an item that a transaction holds."""

    def __init__(self):
        super().__init__(_PREFIX + "TransactionConflictException", "Transaction is ongoing for the item")


def _key_of(table, attrs):
    """(table, hash, range) of an item or key in wire form; a hashable, comparable name."""
    hash_value = attrs[table.hash_key_attr]
    range_value = attrs.get(table.range_key_attr) if table.range_key_attr else None
    return (table.name, str(sorted(hash_value.items())), str(sorted((range_value or {}).items())))


class Holds:
    """Which requests hold which items, to decide the conflicts (see the module's doc)."""

    def __init__(self, window_s):
        self.window = window_s
        self.lock = threading.Lock()
        self.next_id = 0
        # id -> [keys, arrival, answered (None: in flight), cancelled]
        self.requests = {}

    def arrive(self, keys, transaction):
        with self.lock:
            self.next_id += 1
            self.requests[self.next_id] = [frozenset(keys), _now(), None, False, transaction]
            return self.next_id

    def conflicting(self, rid, by_transactions_only=False):
        """The keys of request `rid` that another request (or another transaction) holds."""
        with self.lock:
            keys, arrival = self.requests[rid][:2]
            held = set()
            for other, entry in self.requests.items():
                other_keys, other_arrival, answered, cancelled, transaction = entry
                if other == rid or cancelled or not (keys & other_keys):
                    continue
                if by_transactions_only and not transaction:
                    continue
                if answered is None:
                    # In flight: it holds the items if it came first.
                    if (other_arrival, other) < (arrival, rid):
                        held |= keys & other_keys
                elif answered + self.window > arrival:
                    held |= keys & other_keys
            return held

    def answer(self, rid, cancelled):
        with self.lock:
            entry = self.requests[rid]
            entry[2] = _now()
            entry[3] = cancelled
            horizon = entry[2] - self.window
            gone = [i for i, e in self.requests.items() if e[2] is not None and (e[3] or e[2] < horizon)]
            for i in gone:
                del self.requests[i]


class History:
    """Each item's former versions, as long as an index that lags `lag_s` behind still shows them."""

    def __init__(self, lag_s):
        self.lag = lag_s
        self.lock = threading.Lock()
        # table name -> {(hash DynamoType, range DynamoType or None): [(written at, before)]}
        self.tables = {}

    def before_write(self, table, hash_key, range_key):
        before = copy.deepcopy(table.get_item(hash_key, range_key))
        with self.lock:
            versions = self.tables.setdefault(table.name, {})
            versions.setdefault((hash_key, range_key), []).append((_now(), before))

    def index_view(self, table, items):
        """The items as a lagging index of `table` shows them."""
        horizon = _now() - self.lag
        with self.lock:
            versions = self.tables.get(table.name)
            if not versions:
                return items
            recent = {}
            for key in list(versions):
                kept = [v for v in versions[key] if v[0] > horizon]
                if kept:
                    versions[key] = kept
                    recent[key] = kept[0][1]  # the version before the first write it lags
                else:
                    del versions[key]
        if not recent:
            return items
        out = []
        for item in items:
            key = (item.hash_key, item.range_key)
            if key in recent:
                before = recent.pop(key)
                if before is not None:
                    out.append(before)
            else:
                out.append(item)
        out.extend(before for before in recent.values() if before is not None)  # deleted since
        return out


def _transaction_keys(backend, transact_items):
    """The name of each item a transaction names, in order (None: unsure; moto decides)."""
    try:
        keys = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            table = backend.get_table(op["TableName"])
            keys.append(_key_of(table, op["Item"] if op_type == "Put" else op["Key"]))
        return keys
    except Exception:
        return None


def _conflict(keys, held):
    reasons = []
    for key in keys:
        if key in held:
            reasons.append(("TransactionConflict", "Transaction is ongoing for the item", None))
        else:
            reasons.append((None, None, None))
    return TransactionCanceledException(reasons)


def _item_keys(backend, table_name, attrs):
    """Keys of one item for History: (table, hash DynamoType, range DynamoType or None)."""
    table = backend.get_table(table_name)
    hash_key = ddb_models.DynamoType(attrs[table.hash_key_attr])
    range_key = None
    if table.range_key_attr is not None:
        range_key = ddb_models.DynamoType(attrs[table.range_key_attr])
    return table, hash_key, range_key


def _record_versions(history, backend, named):
    if history is None:
        return
    for table_name, attrs in named:
        try:
            history.before_write(*_item_keys(backend, table_name, attrs))
        except Exception:  # an invalid request: moto reports it
            pass


# Set while a transaction runs: moto applies it with the backend's single-item writes, which
# then are the transaction's, not requests of their own.
_in_transaction = threading.local()


def _wrap_transactions(lock, holds, history):
    inner = ddb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        keys = _transaction_keys(self, transact_items)
        rid = holds.arrive(keys or (), True)
        cancelled = True
        try:
            with lock:
                held = holds.conflicting(rid) if keys else set()
                if held:
                    raise _conflict(keys, held)
                named = []
                for item in transact_items:
                    op_type, op = next(iter(item.items()))
                    if op_type != "ConditionCheck":
                        named.append((op["TableName"], op["Item"] if op_type == "Put" else op["Key"]))
                _record_versions(history, self, named)
                _in_transaction.active = True
                try:
                    result = inner(self, transact_items)
                finally:
                    _in_transaction.active = False
                cancelled = False
                return result
        finally:
            holds.answer(rid, cancelled)

    ddb_models.DynamoDBBackend.transact_write_items = transact_write_items


# Set while a BatchWriteItem runs (moto writes its items with PutItem and DeleteItem): how
# DynamoDB answers a batch item that a transaction holds is not modelled, those writes go through.
_in_batch = threading.local()


def _wrap_batch_write():
    inner = ddb_responses.DynamoHandler.batch_write_item

    def batch_write_item(self, *args, **kwargs):
        _in_batch.active = True
        try:
            return inner(self, *args, **kwargs)
        finally:
            _in_batch.active = False

    ddb_responses.DynamoHandler.batch_write_item = batch_write_item


def _wrap_single_write(name, lock, holds, history):
    inner = getattr(ddb_models.DynamoDBBackend, name)

    def write(self, table_name, attrs, *args, **kwargs):
        if getattr(_in_transaction, "active", False):
            return inner(self, table_name, attrs, *args, **kwargs)
        try:
            keys = [_key_of(self.get_table(table_name), attrs)]
        except Exception:
            keys = []
        rid = holds.arrive(keys, False)
        rejected = True
        alone = not getattr(_in_batch, "active", False)
        try:
            with lock:
                if alone and keys and holds.conflicting(rid, by_transactions_only=True):
                    raise _TransactionConflict()
                rejected = False
                _record_versions(history, self, [(table_name, attrs)])
                return inner(self, table_name, attrs, *args, **kwargs)
        finally:
            holds.answer(rid, rejected)

    setattr(ddb_models.DynamoDBBackend, name, write)


def _wrap_throttle(rate, rng):
    rng_lock = threading.Lock()

    def throttled(method):
        def run(self, *args, **kwargs):
            with rng_lock:
                hit = rng.random() < rate
                code, message = _THROTTLES[rng.randrange(len(_THROTTLES))]
            if hit:
                raise _Throttled(code, message)
            return method(self, *args, **kwargs)

        return run

    for name in _DATA_PLANE:
        setattr(ddb_responses.DynamoHandler, name, throttled(getattr(ddb_responses.DynamoHandler, name)))


def install(lock):
    """Installs the fault mode; returns the index view for moto_server's index queries (or None)."""
    window = _setting("METERLINE_MOTO_CONFLICT_WINDOW_MS", 30) / 1000
    rate = _setting("METERLINE_MOTO_THROTTLE_RATE", 0.01)
    lag = _setting("METERLINE_MOTO_INDEX_LAG_MS", 100) / 1000
    seed = int(_setting("METERLINE_MOTO_SEED", 1))
    holds = Holds(window)
    history = History(lag) if lag > 0 else None
    _wrap_transactions(lock, holds, history)
    for name in ("put_item", "update_item", "delete_item"):
        _wrap_single_write(name, lock, holds, history)
    _wrap_batch_write()
    if rate > 0:
        _wrap_throttle(rate, random.Random(seed))
    print(
        f"fault mode: conflict window {window * 1000:g} ms, throttle rate {rate:g}, "
        f"index lag {lag * 1000:g} ms, seed {seed}",
        flush=True,
    )
    return None if history is None else history.index_view
