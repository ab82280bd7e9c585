"""Unit tests of the local endpoint's fault mode (scripts/moto_faults.py): who holds an item,
which version a lagging index shows. Run by scripts/faults.sh:
    .venv/bin/python -m unittest scripts/test_moto_faults.py
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moto_faults  # noqa: E402


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FaultsTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self._now = moto_faults._now
        moto_faults._now = self.clock

    def tearDown(self):
        moto_faults._now = self._now

    def test_the_earliest_arrival_holds_an_item_until_the_window_after_its_answer(self):
        holds = moto_faults.Holds(0.03)
        first = holds.arrive({"a", "b"}, True)
        self.clock.t += 0.001
        second = holds.arrive({"b", "c"}, True)
        # Both in flight: the second is cancelled for b, the first is not for anything.
        self.assertEqual(holds.conflicting(second), {"b"})
        self.assertEqual(holds.conflicting(first), set())
        holds.answer(second, cancelled=True)
        holds.answer(first, cancelled=False)
        # Within the window after the first's answer, b and a are still held; c never was.
        self.clock.t += 0.02
        third = holds.arrive({"a", "c"}, True)
        self.assertEqual(holds.conflicting(third), {"a"})
        holds.answer(third, cancelled=True)
        self.clock.t += 0.02
        fourth = holds.arrive({"a", "b", "c"}, True)
        self.assertEqual(holds.conflicting(fourth), set())

    def test_a_single_write_is_refused_only_for_a_transaction(self):
        holds = moto_faults.Holds(0.03)
        put = holds.arrive({"a"}, False)
        write = holds.arrive({"a"}, False)
        self.assertEqual(holds.conflicting(write, by_transactions_only=True), set())
        self.assertEqual(holds.conflicting(write), {"a"})
        holds.answer(put, cancelled=False)
        holds.answer(write, cancelled=False)
        tx = holds.arrive({"b"}, True)
        late = holds.arrive({"b"}, False)
        self.assertEqual(holds.conflicting(late, by_transactions_only=True), {"b"})
        holds.answer(tx, cancelled=False)

    def test_a_lagging_index_shows_the_version_before_the_first_recent_write(self):
        class Table:
            name = "t"

            def __init__(self):
                self.items = {}

            def get_item(self, h, r):
                return self.items.get((h, r))

        class Item:
            def __init__(self, h, r, v):
                self.hash_key, self.range_key, self.v = h, r, v

        table = Table()
        history = moto_faults.History(0.1)

        def write(h, v):
            history.before_write(table, h, None)
            if v is None:
                table.items.pop((h, None), None)
            else:
                table.items[(h, None)] = Item(h, None, v)

        write("old", 1)
        write("gone", 1)
        self.clock.t += 0.2  # both visible now
        write("old", 2)
        write("old", 3)
        write("new", 1)
        write("gone", None)
        seen = {i.hash_key: i.v for i in history.index_view(table, list(table.items.values()))}
        self.assertEqual(seen, {"old": 1, "gone": 1})
        self.clock.t += 0.2
        seen = {i.hash_key: i.v for i in history.index_view(table, list(table.items.values()))}
        self.assertEqual(seen, {"old": 3, "new": 1})


if __name__ == "__main__":
    unittest.main()
