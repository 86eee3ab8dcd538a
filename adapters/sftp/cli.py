"""`hub sftp ...`: run the adapter, send one file now, show transfers, check the configuration.

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

from adapters.sftp import config as sftp_config
from adapters.sftp import metrics, records
from adapters.sftp.service import SftpAdapter
from adapters.sftp.session import SftpSession
from hub import logs
from hub.metrics import serve_collector
from hub.nodes import Directory, NodesFile
from hub.settings import Settings
from hub.store import open_store
from hub.yamlsource import load_model
from protocols.errors import ConfigError, HubError


def _directory(settings: Settings) -> Directory:
    nodes, _ = load_model(Path(settings.config_dir) / "nodes.yaml", NodesFile)
    return Directory(nodes.nodes)


def _config_path(args, settings: Settings) -> Path:
    return Path(args.config) if getattr(args, "config", None) else Path(settings.config_dir) / sftp_config.FILE_NAME


def _adapter(args, settings: Settings) -> SftpAdapter:
    directory = _directory(settings)
    cfg = sftp_config.load(_config_path(args, settings), directory)
    return SftpAdapter(cfg, settings, open_store(settings.store_url), directory)


def cmd_run(args, settings: Settings) -> int:
    logs.setup(args.log_level)
    adapter = _adapter(args, settings)
    if adapter.cfg.metrics_port:
        serve_collector(metrics.SftpCollector(adapter.health), adapter.cfg.metrics_port, adapter.cfg.metrics_host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    adapter.run(stop)
    return 0


def cmd_send(args, settings: Settings) -> int:
    logs.setup(args.log_level, json_format=False)
    path = Path(args.file)
    if not path.is_file():
        print(f"hub sftp: {path} is not a file", file=sys.stderr)
        return 2
    adapter = _adapter(args, settings)
    try:
        rec = adapter.send_now(args.node, path)
    except HubError as exc:
        print(f"hub sftp: not sent: {exc}\n  ({exc.text_zh()})", file=sys.stderr)
        return 1
    finally:
        adapter.close()
    print(f"{rec.state}: {path} -> {adapter.cfg.endpoints[args.node].address}:{rec.remote_path} "
          f"({rec.size} bytes, sha256 {rec.sha256}, version {rec.version}"
          + (f", resumed from byte {rec.resumed_from}" if rec.resumed_from else "") + ")")
    return 0


def cmd_status(args, settings: Settings) -> int:
    directory = _directory(settings)
    cfg = sftp_config.load(_config_path(args, settings), directory)
    store = open_store(settings.store_url)
    records.ensure_tables(store)
    checks = {}
    if args.check:
        for code, ep in cfg.endpoints.items():
            try:
                with SftpSession.open(ep, cfg.transfer, node=code):
                    checks[code] = "ok"
            except HubError as exc:
                checks[code] = f"{exc.reason}: {exc.detail}"
    with store:
        counts = records.counts(store)
        recent = records.recent(store, node=args.node, limit=args.limit)
        late = records.alarms_raised(store, kind="report_late", limit=args.limit)
    if args.json:
        print(json.dumps({"endpoints": {c: {"address": e.address, "user": e.user, "check": checks.get(c)}
                                        for c, e in cfg.endpoints.items()},
                          "counts": [{"node": n, "direction": d, "state": s, "count": k}
                                     for (n, d, s), k in sorted(counts.items())],
                          "recent": [r.as_dict() for r in recent], "late_reports": late},
                         ensure_ascii=False, indent=2))
        return 0 if all(v == "ok" for v in checks.values()) else 1
    print("endpoints:")
    for code, ep in cfg.endpoints.items():
        extra = f"  check: {checks[code]}" if code in checks else ""
        print(f"  {code:<4} {ep.user}@{ep.address}  out {ep.remote_outbox}  mirror "
              f"{', '.join(m.path for m in ep.mirror) or '-'}{extra}")
    print("transfers (node direction state: count):")
    for (n, d, s), k in sorted(counts.items()):
        print(f"  {n:<4} {d:<8} {s:<9} {k}")
    print(f"latest {len(recent)}:")
    for r in recent:
        reason = f"  {r.reason_code}" if r.reason_code else ""
        print(f"  {r.updated_at:%Y-%m-%d %H:%M:%S}  {r.node:<4} {r.direction:<8} {r.state:<9} {r.remote_path} "
              f"v{r.version} {r.size} B sha256 {r.sha256[:12]}…{reason}")
    if late:
        print("late reports raised:")
        for a in late:
            print(f"  {a['raised_at']}  {a['report']} {a['province']} {a['period']} (due {a['deadline']})")
    return 0 if all(v == "ok" for v in checks.values()) else 1


def cmd_lint(args, settings: Settings) -> int:
    path = _config_path(args, settings)
    try:
        cfg = sftp_config.load(path, _directory(settings))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"ok: {len(cfg.endpoints)} endpoints, {len(cfg.report_types)} report types ({path})")
    return 0


def cmd_schema(args, settings: Settings) -> int:
    text = json.dumps(sftp_config.schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


COMMANDS = {"run": cmd_run, "send": cmd_send, "status": cmd_status, "lint": cmd_lint, "schema": cmd_schema}


def main(args, settings: Settings) -> int:
    return COMMANDS[args.action](args, settings)
