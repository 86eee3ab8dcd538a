"""`hub smpp run | status | receipts | schema`: the SMPP adapter's command line (wired in hub/cli.py).

Owns: running the adapter until SIGTERM/SIGINT (graceful stop), and the two read-only views
for operators: `status` (bound or not per SMSC from the running adapter's health file, and
the ledger's figures) and `receipts` (receipts that matched no submit: `--unknown` lists
those past the grace period, the duplicates SMPP forced on us among them).
Must not: hold logic beyond printing; exit codes: 0 fine, 1 not bound / problems, 2 usage.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from adapters.smpp.adapter import HEALTH_FILE, SmppAdapter
from adapters.smpp.config import load_smpp_config, schema
from adapters.smpp.ledger import Ledger
from hub import logs
from hub.settings import Settings
from hub.store import open_store
from protocols.errors import ConfigError

#: A health file older than this means the adapter is not running.
STALE_S = 5.0


def run(args, settings: Settings) -> int:
    logs.setup(args.log_level)
    try:
        adapter = SmppAdapter(settings, load_smpp_config(args.config))
    except ConfigError as exc:
        print(f"hub smpp: configuration refused:\n{exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: adapter._stop.set())
    signal.signal(signal.SIGINT, lambda *_: adapter._stop.set())
    code = adapter.run()
    adapter.stop()
    return code


def _health(settings: Settings) -> dict | None:
    path = Path(settings.data_dir) / HEALTH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    age = (datetime.now(UTC) - datetime.fromisoformat(data["at"])).total_seconds()
    return data if age <= STALE_S else None


def status(args, settings: Settings) -> int:
    health = _health(settings)
    store = open_store(settings.store_url)
    try:
        counts = Ledger(store).counts()
    finally:
        store.close()
    if args.json:
        print(json.dumps({"running": health is not None, "health": health, "ledger": counts}, ensure_ascii=False,
                         indent=2, default=str))
        return 0 if health and health.get("bound") else 1
    if health is None:
        print("SMPP adapter: not running (no fresh health file)")
    else:
        broker = health.get("broker", {})
        print(f"SMPP adapter: pid {health['pid']}, broker {'connected' if broker.get('connected') else 'DOWN'}, "
              f"{health['jobs']} messages being submitted, {health['queued_parts']} parts queued")
        for s in health["smscs"]:
            line = (f"  {s['name']:<12} priority {s['priority']}  {'BOUND' if s['bound'] else s['state'].upper():<10}"
                    f" {s['host']}  in flight {s['in_flight']}/{s['window']}  accepted {s['accepted']}  "
                    f"throttled {s['throttled']}  receipts {s['receipts']}  MO {s['mo']}")
            if s.get("reason") and not s["bound"]:
                line += f"\n               {s['reason']}: {s['error']}"
            print(line)
    print("ledger: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0 if health and health.get("bound") else 1


def receipts(args, settings: Settings) -> int:
    store = open_store(settings.store_url)
    try:
        rows = Ledger(store).waiting_receipts("unknown" if args.unknown else None, args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return 0
    for r in rows:
        print(f"{r['received_at'].isoformat()}  {r['status']:<7}  smsc {r['smsc']:<10} id {r['message_id']:<22} "
              f"state {r['state']} stat {r['stat']} err {r['error'] or '-'}"
              + (f"  other ids {', '.join(r['other_ids'])}" if r["other_ids"] else "")
              + (f"  ambiguous between {', '.join(r['ambiguous'])}" if r["ambiguous"] else ""))
    print(f"{len(rows)} {'unknown' if args.unknown else 'waiting'} receipt(s)")
    return 0


def write_schema(args, settings: Settings) -> int:
    text = json.dumps(schema(), ensure_ascii=False, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def main(args, settings: Settings) -> int:
    actions = {"run": run, "status": status, "receipts": receipts, "schema": write_schema}
    return actions[args.action](args, settings)
