"""What the console's pages and API show: read models over the broker, the journal and the flows.

Owns: the overview (RabbitMQ nodes, alarms, blocked connections, which customer-service
nodes are connected, message rates, database health, journal counts), queue figures with
their kind (hub, node, adapter, retry tier, dead letters), search over the journal (message
id, serial number, correlation id, customer number) with each message's hops, the order
views (the orders report's statistics, in flight, overdue) and the knowledge sync matrix.
Every function returns JSON-ready dicts; a part that cannot be read says why instead of
failing the page.
Must not: change anything (the dead-letter desk does), or query a flow's tables other than
through the functions or tables that flow publishes.
"""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, text

from hub.broker_admin import BrokerAdmin, _q
from hub.flows import order_tracker as tracker
from hub.flows.order_report import stats_report
from hub.nodes import Directory
from hub.settings import Settings
from hub.store import JournalRecord, Store
from hub.store.journal import get as journal_get
from hub.store.journal import search as journal_search
from hub.store.schema import journal
from protocols.errors import HubError
from protocols.orders.transaction import TERMINAL, State

ORDER_TYPES_KEYED_BY_SERIAL = ("order.dispatch",)
_OPEN_STATES = [s.value for s in State if s not in TERMINAL]


class ConsoleAdmin(BrokerAdmin):
    """The management API calls only the console needs (nodes, connections, one vhost's figures)."""

    def nodes(self) -> list[dict[str, Any]]:
        return self._request("GET", "nodes", what="read the broker nodes") or []

    def connections(self, vhost: str) -> list[dict[str, Any]]:
        return self._request("GET", f"vhosts/{_q(vhost)}/connections", what=f"list connections of {vhost!r}",
                             missing_ok=True) or []

    def vhost(self, vhost: str) -> dict[str, Any]:
        return self._request("GET", f"vhosts/{_q(vhost)}", what=f"read vhost {vhost!r}", missing_ok=True) or {}


def _rate(stats: dict, key: str) -> float | None:
    d = (stats or {}).get(f"{key}_details")
    return round(float(d["rate"]), 2) if isinstance(d, dict) and "rate" in d else None


def queue_kind(name: str) -> str:
    if name == "hub.dlq":
        return "dlq"
    if name.startswith("hub.retry."):
        return "retry"
    if name == "hub.in":
        return "hub"
    if name.startswith("node."):
        return "node"
    if name.startswith("adapter."):
        return "adapter"
    return "other"


class Views:
    def __init__(self, settings: Settings, store: Store, directory: Directory, *, zone=None) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.zone = zone
        self._cache: dict[str, tuple[float, Any]] = {}

    def _cached(self, key: str, ttl: float, fn):
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < ttl:
            return hit[1]
        value = fn()
        self._cache[key] = (now, value)
        return value

    def _admin(self) -> ConsoleAdmin:
        s = self.settings
        return ConsoleAdmin(s.management_url, s.management_user, s.management_password.get_secret_value(), timeout=5)

    # ------------------------------------------------------------------ overview
    def database(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            with self.store.transaction(write=False) as conn:
                conn.execute(text("SELECT 1"))
            ok, error = True, None
        except HubError as exc:
            ok, error = False, str(exc)
        return {"ok": ok, "error": error, "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
                "dialect": self.store.engine.dialect.name}

    def journal_counts(self) -> dict[str, int]:
        """Messages by journal status (a full count: cached for a few seconds)."""
        def count():
            try:
                return {str(k): v for k, v in self.store.count_by_status().items()}
            except HubError:
                return {}
        return self._cached("journal_counts", 5.0, count)

    def overview(self) -> dict[str, Any]:
        broker: dict[str, Any] = {"ok": False, "error": None, "nodes": [], "alarms": [], "blocked": [],
                                  "rates": {}, "connections": []}
        try:
            with self._admin() as admin:
                for n in admin.nodes():
                    broker["nodes"].append({"name": n.get("name"), "running": bool(n.get("running")),
                                            "mem_alarm": bool(n.get("mem_alarm")),
                                            "disk_free_alarm": bool(n.get("disk_free_alarm"))})
                    if n.get("mem_alarm"):
                        broker["alarms"].append({"node": n.get("name"), "alarm": "memory"})
                    if n.get("disk_free_alarm"):
                        broker["alarms"].append({"node": n.get("name"), "alarm": "disk"})
                conns = admin.connections(self.settings.vhost)
                stats = admin.vhost(self.settings.vhost).get("message_stats") or {}
            broker["ok"] = True
        except HubError as exc:
            broker["error"] = str(exc)
            conns, stats = [], {}
        by_user: dict[str, list[dict]] = {}
        for c in conns:
            by_user.setdefault(c.get("user") or "", []).append(c)
            if c.get("state") in ("blocked", "blocking"):
                broker["blocked"].append({"name": (c.get("client_properties") or {}).get("connection_name")
                                          or c.get("name"), "user": c.get("user"), "state": c.get("state")})
        for node in self.directory.nodes:
            user = self.settings.broker_user(node.amqp_user)
            mine = by_user.get(user, [])
            broker["connections"].append({
                "code": node.code, "name_zh": node.names.zh, "name_en": node.names.en,
                "connected": bool(mine), "connections": len(mine),
                "state": ",".join(sorted({str(c.get("state")) for c in mine})) or None})
        broker["rates"] = {"publish": _rate(stats, "publish"), "deliver": _rate(stats, "deliver_get"),
                           "ack": _rate(stats, "ack")}
        return {"at": datetime.now(UTC).isoformat(), "vhost": self.settings.vhost, "broker": broker,
                "database": self.database(), "journal": self.journal_counts()}

    # ------------------------------------------------------------------ queues
    def queues(self) -> dict[str, Any]:
        try:
            with self._admin() as admin:
                figures = admin.list_queues(self.settings.vhost)
        except HubError as exc:
            return {"ok": False, "error": str(exc), "queues": [], "dead_letters": None, "retrying": None}
        rows = [{"name": q.name, "kind": queue_kind(q.name), "type": q.type, "messages": q.messages,
                 "unacked": q.messages_unacknowledged, "consumers": q.consumers, "publish_rate": q.publish_rate,
                 "deliver_rate": q.deliver_rate, "ack_rate": q.ack_rate} for q in figures]
        order = {"hub": 0, "dlq": 1, "retry": 2, "adapter": 3, "node": 4, "other": 5}
        rows.sort(key=lambda r: (order[r["kind"]], r["name"]))
        return {"ok": True, "error": None, "queues": rows,
                "dead_letters": sum(r["messages"] for r in rows if r["kind"] == "dlq"),
                "retrying": sum(r["messages"] for r in rows if r["kind"] == "retry"),
                "journal": self.journal_counts()}

    # ------------------------------------------------------------------ search
    def search(self, q: str, limit: int = 50) -> dict[str, Any]:
        """Journal rows for a message id, business key, correlation id, serial number or customer number."""
        q = q.strip()
        if not q:
            return {"query": q, "results": [], "orders": []}
        found: dict[str, JournalRecord] = {}
        orders_found: list[dict] = []
        with self.store.transaction(write=False) as conn:
            for r in journal_search(conn, q, limit):
                found[r.message_id] = r
            # A serial number (流水号) is part of the order's business key: company codes are few.
            keys = [f"{t}:{n.code}:{q}" for t in ORDER_TYPES_KEYED_BY_SERIAL for n in self.directory.nodes]
            ids = [m for (m,) in conn.execute(select(journal.c.message_id).where(journal.c.business_key.in_(keys)))]
            # The order tracker knows every message of an order (steps), and the customer's number.
            o = tracker.orders.c
            cond = [o.serial == q]
            if q.isdigit() and 5 <= len(q) <= 20:
                cond.append(o.order_json.like(f'%"customer_mobile":"{q}"%'))
            try:
                order_rows = conn.execute(select(o.originator, o.serial, o.receiver, o.state, o.message_id,
                                                 o.dispatch_time).where(or_(*cond)).limit(limit)).all()
            except Exception:  # the orders flow's tables are not there (no orders flow in this hub)
                order_rows = []
            for row in order_rows:
                orders_found.append({"originator": row.originator, "serial": row.serial, "receiver": row.receiver,
                                     "state": row.state, "message_id": row.message_id,
                                     "dispatch_time": row.dispatch_time.isoformat()})
                ids.append(row.message_id)
                s = tracker.order_steps.c
                ids += [m for (m,) in conn.execute(select(s.message_id).where(
                    s.originator == row.originator, s.serial == row.serial, s.message_id.is_not(None)))]
            for mid in dict.fromkeys(ids):
                if mid not in found and len(found) < limit:
                    r = journal_get(conn, mid)
                    if r is not None:
                        found[mid] = r
        results = sorted(found.values(), key=lambda r: r.created_at)
        return {"query": q, "results": [record_dict(r) for r in results], "orders": orders_found}

    # ------------------------------------------------------------------ orders
    def orders(self, limit: int = 200) -> dict[str, Any]:
        zone = self.zone
        day = datetime.now(zone).date()
        report = stats_report(self.store, day, zone, self.directory)
        o = tracker.orders.c
        cols = (o.originator, o.serial, o.receiver, o.state, o.message_id, o.dispatch_time, o.final_deadline,
                *(o[c] for c in tracker.OVERDUE_COLUMNS))
        with self.store.transaction(write=False) as conn:
            open_rows = conn.execute(select(*cols).where(o.state.in_(_OPEN_STATES))
                                     .order_by(o.dispatch_time).limit(limit)).all()
            overdue_rows = conn.execute(select(*cols).where(or_(*(o[c] for c in tracker.OVERDUE_COLUMNS)))
                                        .order_by(o.final_deadline).limit(limit)).all()

        def row(r) -> dict:
            return {"originator": r.originator, "serial": r.serial, "receiver": r.receiver, "state": r.state,
                    "message_id": r.message_id, "dispatch_time": r.dispatch_time.isoformat(),
                    "final_deadline": r.final_deadline.isoformat(),
                    "overdue": [c for c in tracker.OVERDUE_COLUMNS if getattr(r, c)]}
        return {"stats": report, "in_flight": [row(r) for r in open_rows], "overdue": [row(r) for r in overdue_rows]}

    # ------------------------------------------------------------------ knowledge
    def knowledge(self, only_outstanding: bool = False, limit: int = 2000) -> dict[str, Any]:
        """The sync matrix (hub/store/knowledge.py: item x recipient), with outstanding receipts per recipient."""
        try:
            kn = importlib.import_module("hub.store.knowledge")
        except ImportError:  # a store without the knowledge tables
            return {"available": False, "rows": [], "outstanding_by_recipient": {}}
        with self.store.transaction(write=False) as conn:
            try:
                cells = kn.sync_matrix(conn, only_outstanding=only_outstanding, limit=limit)
                waiting = kn.outstanding_receipts(conn)
            except Exception as exc:  # tables missing: no knowledge flow has run against this store
                return {"available": False, "error": type(exc).__name__, "rows": [], "outstanding_by_recipient": {}}
        rows = [{"item_id": c.item_id, "recipient": c.recipient, "published": c.published, "revoked": c.revoked,
                 "delivered": c.delivered, "confirmed": c.confirmed, "receipt": c.receipt,
                 "outstanding": c.outstanding} for c in cells]
        return {"available": True, "rows": rows, "outstanding_by_recipient": waiting}


def record_dict(r: JournalRecord) -> dict[str, Any]:
    return {"message_id": r.message_id, "type": r.type, "source": r.source, "status": str(r.status),
            "business_key": r.business_key, "correlation_id": r.correlation_id,
            "destinations": list(r.destinations), "route_id": r.route_id, "config_version": r.config_version,
            "attempts": r.attempts, "reason_code": r.reason_code, "error": r.error, "duplicates": r.duplicates,
            "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
            "hops": [{"destination": h.destination, "status": h.status, "at": h.at.isoformat(), "detail": h.detail}
                     for h in r.hops]}
