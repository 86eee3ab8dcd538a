"""Version sync state in the store, on SQLite and PostgreSQL: versions never go down, tombstones stay."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.store import knowledge as ks
from hub.store import open_store
from protocols.knowledge.versions import ItemVersions


def test_out_of_order_writes_never_regress_and_tombstones_stay(store_url):
    now = datetime.now(UTC)
    with open_store(store_url) as store, store.transaction(write=True) as conn:
        ks.write_versions(conn, {("31", "KN-1"): ItemVersions(3, 0)}, now=now)
        ks.write_versions(conn, {("31", "KN-1"): ItemVersions(2, 2)}, now=now)  # late copy and receipt of v2
        assert ks.load_versions(conn, [("31", "KN-1")])[("31", "KN-1")] == ItemVersions(3, 2)
        ks.write_versions(conn, {("31", "KN-1"): ItemVersions(4, 0, revoked=4)}, now=now)
        ks.write_versions(conn, {("31", "KN-1"): ItemVersions(3, 3, revoked=None)}, now=now)
        assert ks.load_versions(conn, [("31", "KN-1")])[("31", "KN-1")] == ItemVersions(4, 3, revoked=4)
