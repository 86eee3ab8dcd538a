"""CLI parity with the console: `hub console`, `hub status`, `hub dlq list|show|replay|discard`.

Owns: the command bodies (hub/cli.py only declares the arguments and calls these), printing
text for people and `--json` for scripts. Replay and discard from the CLI are audited under
the operating-system user (`cli:NAME`), with the role `admin` (whoever runs the CLI holds the
broker's and the store's credentials already).
Must not: print secrets (settings are shown without URLs' passwords).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from hub.settings import Settings


def users_file(settings: Settings, given: str | None) -> Path:
    return Path(given or os.environ.get("HUB_CONSOLE_USERS") or Path(settings.data_dir) / "console-users.yaml")


def cmd_console(args, settings: Settings) -> int:
    from hub.console.access import Role, Users

    path = users_file(settings, args.users)
    if args.action == "user":
        password = os.environ.get("HUB_CONSOLE_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
        if len(password) < 8:
            print("hub: a console password needs at least 8 characters", file=sys.stderr)
            return 2
        Users(path).put(args.name, Role(args.role), password)
        print(f"user {args.name} ({args.role}) written to {path}")
        return 0
    from hub import logs
    from hub.console.app import ConsoleConfig, serve

    logs.setup(args.log_level)
    if not path.exists():
        print(f"hub: no console users yet; add one with `hub console user NAME --role admin` ({path})",
              file=sys.stderr)
    config = ConsoleConfig(users_file=path, session_ttl_s=args.session_minutes * 60.0,
                           secure_cookies=args.secure_cookies)
    print(f"console on http://{args.host}:{args.port}/ (users {path})", flush=True)
    return serve(settings, config, host=args.host, port=args.port)


def _views(settings: Settings):
    from hub.configuration import load_config
    from hub.console.views import Views
    from hub.flows.order_settings import load_order_settings
    from hub.store import open_store

    store = open_store(settings.store_url)
    cfg = load_config(settings.config_dir, settings.routes_dir)
    return Views(settings, store, cfg.directory, zone=load_order_settings(settings.config_dir).zone), store


def cmd_status(args, settings: Settings) -> int:
    views, store = _views(settings)
    with store:
        ov, qs = views.overview(), views.queues()
    if args.json:
        print(json.dumps({"overview": ov, "queues": qs}, ensure_ascii=False, indent=2))
        return 0 if ov["broker"]["ok"] and ov["database"]["ok"] else 1
    b = ov["broker"]
    print(f"vhost {ov['vhost']}  broker {'OK' if b['ok'] else 'FAILING: ' + str(b['error'])}  "
          f"database {'OK' if ov['database']['ok'] else 'FAILING'} ({ov['database']['latency_ms']} ms)")
    for n in b["nodes"]:
        alarms = [a for a, on in (("memory", n["mem_alarm"]), ("disk", n["disk_free_alarm"])) if on]
        print(f"  node {n['name']}: {'running' if n['running'] else 'DOWN'}"
              + (f"  ALARM {' '.join(alarms)}" if alarms else ""))
    for c in b["blocked"]:
        print(f"  BLOCKED connection {c['name']} ({c['user']}): {c['state']}")
    up = [c["code"] for c in b["connections"] if c["connected"]]
    print(f"  nodes connected 已连接: {len(up)}/{len(b['connections'])} {' '.join(up)}")
    r = b["rates"]
    print(f"  rates msg/s: publish {r['publish']}  deliver {r['deliver']}  ack {r['ack']}")
    print(f"  journal: {' '.join(f'{k}={v}' for k, v in sorted(ov['journal'].items())) or '-'}")
    print(f"  dead letters 死信 {qs['dead_letters']}  retrying 重试 {qs['retrying']}")
    busy = [q for q in qs["queues"] if q["messages"] or q["unacked"] or q["kind"] in ("hub", "dlq")]
    for q in busy:
        print(f"  {q['name']:<28} {q['kind']:<8} depth {q['messages']:<7} unacked {q['unacked']:<6} "
              f"consumers {q['consumers']}")
    return 0 if b["ok"] and ov["database"]["ok"] else 1


def cmd_dlq(args, settings: Settings) -> int:
    from hub.console import audit
    from hub.console.deadletters import DeadLetterDesk
    from hub.store import open_store

    who = f"cli:{getpass.getuser()}"
    with open_store(settings.store_url) as store:
        audit.ensure_tables(store)
        desk = DeadLetterDesk(settings, store)
        if args.action == "list":
            items = desk.browse(args.limit)
            if args.json:
                print(json.dumps([d.summary() for d in items], ensure_ascii=False, indent=2))
                return 0
            print(f"{desk.depth()} dead letters in hub.dlq")
            for d in items:
                print(f"{d.key}  {d.message_id}  {d.type}  from {d.source or '-'}  {d.reason_code}  "
                      f"attempts {d.attempts}  -> {'/'.join(d.target) if d.target else 'no route'}")
            return 0
        if args.action == "show":
            found = desk.find(args.id)
            if found is None:
                print(f"no dead letter {args.id!r} in hub.dlq", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(found.as_dict(), ensure_ascii=False, indent=2))
                return 0
            for k, v in found.summary().items():
                print(f"{k:>12}: {v}")
            print("     headers:")
            for k, v in found.headers.items():
                print(f"    {k}: {v}")
            print(f"     payload ({found.payload_encoding}):\n{found.payload}")
            return 0
        if args.action == "replay":
            if not args.ids and not args.all:
                print("hub: name dead letters (key or message id) or give --all", file=sys.stderr)
                return 2
            result = desk.replay(None if args.all else args.ids, who=who, role="admin")
        else:
            result = desk.discard(args.ids, args.reason, who=who, role="admin")
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        for d in result.done:
            print(f"{args.action}ed {d['message_id']} ({d['key']})" + (f" -> {d['target']}" if args.action == "replay"
                                                                          else ""))
        for d in result.skipped:
            print(f"skipped {d['message_id']} ({d['key']}): {d['why']}")
        print(f"{len(result.done)} done, {len(result.skipped)} skipped")
    return 0 if not result.skipped else 1
