"""hub/hop_journal.py: adapters' later steps reach the journal once the hub journaled the message,
without re-asking the store about every waiting message on every pass."""

from __future__ import annotations

from datetime import UTC, datetime

from waiting import wait_until

from hub.hop_journal import RECHECK_S, HopJournal
from hub.store import Hop, JournalEntry, JournalStatus, open_store

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


class CountingStore:
    """The real store, counting how many ids the writer asks about."""

    def __init__(self, store) -> None:
        self.store, self.asked = store, 0

    def known_message_ids(self, ids):
        ids = list(ids)
        self.asked += len(ids)
        return self.store.known_message_ids(ids)

    def append_hops(self, hops):
        return self.store.append_hops(hops)

    def hot_path(self):
        return self  # the writer's look-ups come here, to be counted

    def close(self) -> None:
        pass


def test_hops_wait_for_their_row_and_unjournaled_ids_are_not_re_asked_every_pass(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/j.sqlite3")
    counting = CountingStore(store)
    clock = [0.0]
    hj = HopJournal(counting, name="test", grace_s=60, gather_s=0.001, clock=lambda: clock[0])
    try:
        # 2,000 messages the hub never journals (sent straight to the adapter) and one it does, later
        hj.add([(f"direct-{i}", Hop("smsc.a", "submitted", NOW)) for i in range(2000)])
        hj.add([("routed", Hop("smsc.a", "submitted", NOW, "first"))])
        wait_until(lambda: counting.asked >= 2001, 5, description="each new id asked about once")
        asked = counting.asked
        for _ in range(5):    # more passes before any re-check is due: nobody is asked about again
            done = hj.stats["passes"]
            hj._wake.set()
            wait_until(lambda d=done: hj.stats["passes"] > d, 5, description="another writer pass")
        assert counting.asked == asked == 2001
        store.record([JournalEntry(message_id="routed", type="sms.send", source="00",
                                   status=JournalStatus.delivered, at=NOW, hops=[Hop("adapter.smpp", "published", NOW)])])
        clock[0] = RECHECK_S[0] + 0.01                       # the first re-check is due
        hj._wake.set()
        wait_until(lambda: store.get("routed") and len(store.get("routed").hops) == 2, 5,
                   description="the routed message's hop written once its row exists")
        assert [h.detail for h in store.get("routed").hops] == [None, "first"]
        assert hj.backlog() == 2000
        clock[0] = 61.0                                     # past the grace: the others are given up
        hj._wake.set()
        wait_until(lambda: hj.stats["dropped_no_row"] == 2000, 5, description="unjournaled hops dropped after the grace")
        assert hj.backlog() == 0 and hj.stats["written"] == 1
    finally:
        hj.close(1)
        store.close()
