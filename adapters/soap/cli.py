"""`hub soap ...`: run the delivery side and the intake, show deliveries, check the configuration.

hub/cli.py declares the arguments and calls `main(args, settings)` by module name, so the hub
package never imports an adapter (import layers: protocols -> mappings -> hub -> adapters).
Exit codes as the rest of `hub`: 0 success, 1 problems found, 2 usage or environment errors.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from adapters.soap import config as soap_config
from adapters.soap import records
from adapters.soap.delivery import DeliveryService
from adapters.soap.intake import Intake, IntakeServer
from hub import logs
from hub.configuration import load_config
from hub.settings import Settings
from hub.store import open_store
from hub.topology import load_or_create_passwords
from protocols.errors import ConfigError


def _config_path(args, settings: Settings) -> Path:
    return Path(args.config) if getattr(args, "config", None) else Path(settings.config_dir) / soap_config.FILE_NAME


def cmd_run(args, settings: Settings) -> int:
    logs.setup(args.log_level)
    hub_cfg = load_config(settings.config_dir, settings.routes_dir)
    cfg = soap_config.load(_config_path(args, settings), hub_cfg.directory)
    store = open_store(settings.store_url)
    delivery = server = None
    if not args.intake_only and cfg.crm_nodes:
        delivery = DeliveryService(cfg, settings, store).start()
    if not args.delivery_only and cfg.intake_nodes:
        users = [settings.broker_user(hub_cfg.directory.by_code[c].amqp_user) for c in cfg.intake_nodes]
        intake = Intake(cfg, settings, hub_cfg.directory, hub_cfg.catalogue, load_or_create_passwords(settings, users))
        server = IntakeServer(intake).start()
    if delivery is None and server is None:
        print("hub soap: nothing to run: config/soap.yaml names no crm (or no intake) nodes", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    if server is not None:
        server.stop()
    if delivery is not None:
        delivery.stop()
    store.close()
    return 0


def cmd_status(args, settings: Settings) -> int:
    store = open_store(settings.store_url)
    records.ensure_tables(store)
    with store:
        counts = records.counts(store)
        recent = records.recent(store, node=args.node, limit=args.limit)
    if args.json:
        print(json.dumps({"counts": [{"node": n, "outcome": o, "calls": k} for (n, o), k in sorted(counts.items())],
                          "recent": [r.as_dict() for r in recent]}, ensure_ascii=False, indent=2))
        return 0
    print("CRM calls (node outcome: count):")
    for (n, o), k in sorted(counts.items()):
        print(f"  {n:<4} {o:<13} {k}")
    print(f"latest {len(recent)}:")
    for r in recent:
        reason = f"  {r.reason_code}: {r.detail}" if r.reason_code else ""
        print(f"  {r.at:%Y-%m-%d %H:%M:%S}  {r.node:<4} {r.message_id} {r.type} attempt {r.attempt} "
              f"{r.outcome} {r.elapsed_ms} ms{reason}")
    return 0


def cmd_lint(args, settings: Settings) -> int:
    path = _config_path(args, settings)
    try:
        directory = load_config(settings.config_dir, settings.routes_dir).directory
        cfg = soap_config.load(path, directory)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"ok: {len(cfg.crm_nodes)} CRM endpoints, {len(cfg.intake_nodes)} intake accounts ({path})")
    return 0


def cmd_schema(args, settings: Settings) -> int:
    text = json.dumps(soap_config.schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


COMMANDS = {"run": cmd_run, "status": cmd_status, "lint": cmd_lint, "schema": cmd_schema}


def main(args, settings: Settings) -> int:
    return COMMANDS[args.action](args, settings)
