"""The `hub` command: run the hub, manage the broker topology, check configuration.

Exit codes fit CI and editors: 0 success, 1 problems found (lint errors, drift, failed
fixtures), 2 usage or environment errors (broker unreachable, unreadable files).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from hub import logs
from hub.settings import load_settings
from protocols.errors import ConfigError, HubError


def _settings(args):
    return load_settings(args.settings, vhost=getattr(args, "vhost", None))


def cmd_run(args) -> int:
    from hub.runtime import HubProcess

    logs.setup(args.log_level)
    try:
        proc = HubProcess(_settings(args), worker_id=args.worker_id, watch=not args.no_watch)
    except ConfigError as exc:
        print(f"hub: configuration refused:\n{exc}", file=sys.stderr)
        return 1
    return proc.run()


def _topology(args):
    from hub.configuration import ADAPTER_NAMES, load_config
    from hub.topology import build_topology

    settings = _settings(args)
    cfg = load_config(settings.config_dir, settings.routes_dir)
    return settings, build_topology(settings, cfg.directory, list(ADAPTER_NAMES))


def _site_link(args, settings, passwords: dict[str, str]) -> dict:
    """`hub topology link`: the province broker's definitions (docs/scale-out.md)."""
    from hub import topology as topo
    from hub.configuration import load_config
    from hub.sites import LINK_USER, build_site_link

    if not args.node or not args.hq_url:
        raise ConfigError("`hub topology link` needs --node CODE and --hq-url amqp[s]://HQ-HOST:PORT")
    directory = load_config(settings.config_dir, settings.routes_dir).directory
    link_user = settings.broker_user(LINK_USER)
    link_password = topo.load_or_create_passwords(settings, [link_user])[link_user]
    return build_site_link(settings, directory, args.node, hq_url=args.hq_url, local_url=args.local_url,
                           node_password=passwords.get(settings.broker_user(f"node-{args.node}"), ""),
                           link_password=link_password, reconnect_delay_s=args.reconnect_delay)


def cmd_topology(args) -> int:
    from hub import topology as topo

    settings, t = _topology(args)
    users = [u.name for u in t.users]
    if args.action == "apply":
        passwords = topo.load_or_create_passwords(settings, users)
        topo.apply(t, settings, passwords)
        drift = topo.diff(t, settings)
        for line in drift:
            print(line)
        print(f"topology applied to vhost {settings.vhost!r}: {len(t.queues)} queues, "
              f"{len(t.exchanges)} exchanges, {len(t.users)} users" + (" (drift remains)" if drift else ""))
        return 1 if drift else 0
    if args.action in ("export", "link"):
        passwords = topo.load_or_create_passwords(settings, users)
        defs = topo.export_definitions(t, passwords) if args.action == "export" else _site_link(args, settings, passwords)
        text = json.dumps(defs, indent=2, ensure_ascii=False)
        if args.output:
            Path(args.output).write_text(text + "\n", encoding="utf-8")
            if args.action == "link":  # the shovel URIs carry the node's password
                os.chmod(args.output, 0o600)
            print(f"wrote {args.output}")
        else:
            print(text)
        return 0
    drift = topo.diff(t, settings)
    for line in drift:
        print(line)
    print("no drift" if not drift else f"{len(drift)} differences")
    return 1 if drift else 0


def _checked_settings(args):
    """Settings for the checking commands, or None (having said why) when they are unusable: exit 2."""
    from pydantic import ValidationError
    from yaml import YAMLError

    try:
        return _settings(args)
    except (ValidationError, YAMLError, OSError) as exc:
        print(f"hub: the settings cannot be used ({type(exc).__name__}): {exc}", file=sys.stderr)
        return None


def cmd_lint(args) -> int:
    from hub.config_lint import UNUSABLE, lint

    settings = _checked_settings(args)
    if settings is None:
        return UNUSABLE
    report = lint(settings)
    text = report.json() if args.format == "json" else report.text()
    print(text, file=sys.stderr if report.unusable and args.format != "json" else sys.stdout)
    return report.exit_code


def cmd_routes_test(args) -> int:
    from hub.route_fixtures import run_fixtures
    from hub.runtime import build_pipeline

    settings = _checked_settings(args)
    if settings is None:
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing or not Path(settings.routes_dir).is_dir():
        print(f"hub: not found: {', '.join(missing) or settings.routes_dir}", file=sys.stderr)
        return 2
    try:
        pipeline = build_pipeline(settings)
    except ConfigError as exc:
        print(f"hub: the configuration is invalid; `hub config lint` lists the problems:\n{exc}", file=sys.stderr)
        return 1
    run = run_fixtures(pipeline, [Path(p) for p in args.paths] or [Path(settings.routes_dir)],
                       require_coverage=not args.paths)
    for r in run.results:
        if r.ok and not args.verbose:
            continue
        print(f"{'ok  ' if r.ok else 'FAIL'}  {r.where}  {r.name}  (route {r.route_id or '-'}, {r.verdict})")
        if r.report:
            print("  " + r.report.replace("\n", "\n  "))
    for e in run.errors:
        print(str(e))
    for u in run.uncovered:
        print(f"uncovered: {u} is handled by no fixture case; add one to a *.fixtures.yaml beside it")
    print(f"{run.passed} passed, {run.failed} failed")
    return 0 if run.ok else 1


def cmd_routes_show(args) -> int:
    from hub import routemap
    from hub.configuration import load_config

    settings = _checked_settings(args)
    if settings is None:
        return 2
    rows = routemap.table(load_config(settings.config_dir, settings.routes_dir))
    print(routemap.show_json(rows) if args.format == "json" else routemap.show_text(rows))
    return 0


def cmd_routes_graph(args) -> int:
    from hub import routemap
    from hub.configuration import load_config

    settings = _checked_settings(args)
    if settings is None:
        return 2
    cfg = load_config(settings.config_dir, settings.routes_dir)
    base = Path(settings.routes_dir).resolve().parent
    text = {"text": lambda: routemap.graph_text(cfg, base), "mermaid": lambda: routemap.graph_mermaid(cfg),
            "markdown": lambda: routemap.routes_page(cfg, base)}[args.format]()
    return _write_or_print(text, args.output)


def cmd_contract(args) -> int:
    from hub import contract_docs
    from hub.configuration import load_config

    settings = _checked_settings(args)
    if settings is None:
        return 2
    cfg = load_config(settings.config_dir, settings.routes_dir)
    return _write_or_print(contract_docs.render(settings, cfg), args.output)


def _write_or_print(text: str, output: str | None) -> int:
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        print(f"wrote {output}")
    else:
        print(text)
    return 0


def cmd_schema(args) -> int:
    from hub.schemas_export import write_schemas

    out = Path(args.output)
    for path in write_schemas(out):
        print(f"wrote {path}")
    return 0


def cmd_reload(args) -> int:
    settings = _settings(args)
    pid_file = Path(settings.data_dir) / "hub.pid"
    if not pid_file.exists():
        print(f"hub: no running hub (no {pid_file})", file=sys.stderr)
        return 2
    from hub.runtime import build_pipeline

    try:
        build_pipeline(settings)
    except ConfigError as exc:
        print(f"hub: reload refused, the running configuration stays in force:\n{exc}", file=sys.stderr)
        return 1
    os.kill(int(pid_file.read_text()), signal.SIGHUP)
    print("reload signalled")
    return 0


def cmd_trace(args) -> int:
    from hub.store import open_store

    store = open_store(_settings(args).store_url)
    records = [r for r in [store.get(args.id)] if r] or store.search(args.id)
    if not records:
        print(f"nothing journaled for {args.id!r}")
        return 1
    for r in records:
        print(f"{r.message_id}  type={r.type} source={r.source} status={r.status} attempts={r.attempts} "
              f"route={r.route_id} config={r.config_version} key={r.business_key}")
        if r.reason_code:
            print(f"  reason: {r.reason_code}: {r.error}")
        for h in r.hops:
            print(f"  {h.at.isoformat()}  {h.status:<14} {h.destination}" + (f"  {h.detail}" if h.detail else ""))
    return 0


def cmd_demo(args) -> int:
    from hub.demo import run_demo

    logs.setup(args.log_level, json_format=False)
    return run_demo(_settings(args), seconds=args.seconds)


def _orders_context(args):
    """(store, order settings, directory) for the `hub orders` commands; the tracker's tables exist."""
    from hub.configuration import load_config
    from hub.flows.order_settings import load_order_settings
    from hub.flows.order_tracker import ensure_tables
    from hub.store import open_store

    settings = _settings(args)
    store = open_store(settings.store_url)
    ensure_tables(store)
    return store, load_order_settings(settings.config_dir), load_config(settings.config_dir, settings.routes_dir)


def cmd_orders_stats(args) -> int:
    from datetime import date, datetime

    from hub.flows.order_report import stats_report, stats_text

    store, osettings, cfg = _orders_context(args)
    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now(osettings.zone).date()
    except ValueError:
        print(f"hub: --date {args.date!r} is not a date such as 2024-06-11", file=sys.stderr)
        return 2
    with store:
        report = stats_report(store, day, osettings.zone, cfg.directory)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else stats_text(report))
    return 0


def cmd_orders_show(args) -> int:
    from hub.flows.order_report import order_text, show_order

    store, osettings, _cfg = _orders_context(args)
    with store:
        view = show_order(store, args.company, args.serial)
    if view is None:
        print(f"no dispatch order {args.company}/{args.serial} is tracked", file=sys.stderr)
        return 1
    print(json.dumps(view.as_dict(), ensure_ascii=False, indent=2) if args.json else order_text(view, osettings.zone))
    return 0


_DURATION = {"d": 86400, "h": 3600, "m": 60}


def _duration_s(text: str) -> float:
    """'30d', '12h', '90m' as seconds."""
    if len(text) < 2 or text[-1] not in _DURATION or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 30d, 12h or 90m")
    return int(text[:-1]) * _DURATION[text[-1]]


def cmd_store_prune(args) -> int:
    from datetime import UTC, datetime, timedelta

    from hub.store import open_store

    settings = _settings(args)
    cut = datetime.now(UTC) - timedelta(seconds=args.older_than)
    with open_store(settings.store_url) as store:
        would = store.count_prunable(cut)
        print(f"cut-off {cut.isoformat(timespec='seconds')}: prunable {would}")
        if args.dry_run:
            return 0

        def progress(p):
            print(f"  … journal {p.journal}/{would['journal']}, hops {p.hops}, keys {p.business_keys}, "
                  f"timers {p.timers}", file=sys.stderr, flush=True)
        done = store.prune(cut, batch=args.batch, progress=progress)
    print(f"pruned journal {done.journal} {done.by_status}, hops {done.hops}, business keys "
          f"{done.business_keys}, fired timers {done.timers} in {done.batches} batches")
    return 0


#: The adapters' command modules (each has `main(args, settings)`), loaded by name: the layer
#: contract (import-linter: protocols -> mappings -> hub -> adapters) forbids hub importing adapters.
ADAPTER_COMMANDS = {
    "smpp": "adapters.smpp.commands",
    "sftp": "adapters.sftp.cli",
    "wap": "adapters.wap.cli",
    "nms": "adapters.nms.cli",
    "soap": "adapters.soap.cli",
}


def _adapter_command(name: str):
    def run(args) -> int:
        import importlib

        return importlib.import_module(ADAPTER_COMMANDS[name]).main(args, _settings(args))
    run.__name__ = f"cmd_{name}"
    run.__doc__ = f"`hub {name} ...`: {ADAPTER_COMMANDS[name]}.main"
    return run


cmd_smpp, cmd_sftp, cmd_wap, cmd_nms, cmd_soap = (_adapter_command(n) for n in ("smpp", "sftp", "wap", "nms", "soap"))


def cmd_console(args) -> int:
    """`hub console`, `hub console user`: hub/console/commands.py."""
    from hub.console.commands import cmd_console as run

    return run(args, _settings(args))


def cmd_status(args) -> int:
    from hub.console.commands import cmd_status as run

    return run(args, _settings(args))


def cmd_dlq(args) -> int:
    from hub.console.commands import cmd_dlq as run

    return run(args, _settings(args))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hub", description="Interface hub of the customer-service network")
    p.add_argument("--settings", help="settings file (default config/hub.yaml or $HUB_SETTINGS)")
    p.add_argument("--vhost", help="override the RabbitMQ virtual host")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the hub (consume, route, deliver)")
    r.add_argument("--worker-id")
    r.add_argument("--no-watch", action="store_true", help="do not watch configuration files")
    r.add_argument("--log-level")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="run HQ, the second-line platform and provinces on this machine")
    d.add_argument("--seconds", type=float, default=20.0)
    d.add_argument("--log-level", default="WARNING")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("topology", help="declare, export or compare the broker topology")
    t.add_argument("action", choices=["apply", "export", "diff", "link"],
                   help="link: definitions for a province's own broker, shovelled to HQ (docs/scale-out.md)")
    t.add_argument("-o", "--output", help="file for `export` or `link` (default stdout)")
    t.add_argument("--node", help="link: the province node code, e.g. 44")
    t.add_argument("--hq-url", help="link: HQ's broker as the province reaches it, amqps://HOST:PORT")
    t.add_argument("--local-url", default="amqp://127.0.0.1:5672",
                   help="link: the province broker as its shovels reach it (default amqp://127.0.0.1:5672)")
    t.add_argument("--reconnect-delay", type=int, default=5, help="link: seconds between shovel reconnects")
    t.set_defaults(func=cmd_topology)

    c = sub.add_parser("config", help="check nodes, message types, routes and fixtures")
    c.add_argument("action", choices=["lint"])
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_lint)

    ro = sub.add_parser("routes", help="check, test and show the routes").add_subparsers(dest="action",
                                                                                          required=True)
    rlint = ro.add_parser("lint", help="check the configuration (the same as `hub config lint`)")
    rlint.add_argument("--format", choices=["text", "json"], default="text")
    rlint.set_defaults(func=cmd_lint)
    rtest = ro.add_parser("test", help="run the route fixtures (routes/*.fixtures.yaml) without a broker")
    rtest.add_argument("paths", nargs="*", help="fixture files or folders (default: the routes folder, "
                       "which also requires every route to be covered)")
    rtest.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    rtest.set_defaults(func=cmd_routes_test)
    rshow = ro.add_parser("show", help="the effective routing table")
    rshow.add_argument("--format", choices=["text", "json"], default="text")
    rshow.set_defaults(func=cmd_routes_show)
    rgraph = ro.add_parser("graph", help="nodes, routes and adapters as a graph")
    rgraph.add_argument("--format", choices=["text", "mermaid", "markdown"], default="text",
                        help="markdown is the page docs/routes.md")
    rgraph.add_argument("-o", "--output", help="write to this file instead of stdout")
    rgraph.set_defaults(func=cmd_routes_graph)

    sto = sub.add_parser("store", help="the state store: retention").add_subparsers(dest="action", required=True)
    spr = sto.add_parser("prune", help="delete old final journal rows, hops, key claims and fired timers "
                         "(the retention period is also the dedupe window: docs/operations.md)")
    spr.add_argument("--older-than", type=_duration_s, required=True, metavar="AGE",
                     help="age such as 30d, 12h or 90m")
    spr.add_argument("--batch", type=int, default=5000, help="rows per transaction (short write locks)")
    spr.add_argument("--dry-run", action="store_true", help="only count what would go")
    spr.set_defaults(func=cmd_store_prune)

    ct = sub.add_parser("contract", help="generate the wire contract documents")
    ct.add_argument("kind", choices=["asyncapi"])
    ct.add_argument("-o", "--output", help="file to write (default stdout), e.g. docs/asyncapi.yaml")
    ct.set_defaults(func=cmd_contract)

    s = sub.add_parser("schema", help="write JSON schemas of the configuration files for editors")
    s.add_argument("-o", "--output", default="docs/schemas")
    s.set_defaults(func=cmd_schema)

    rl = sub.add_parser("reload", help="validate the configuration and make the running hub reload it")
    rl.set_defaults(func=cmd_reload)

    tr = sub.add_parser("trace", help="the journey of a message by id, business key or correlation id")
    tr.add_argument("id")
    tr.set_defaults(func=cmd_trace)

    cn = sub.add_parser("console", help="the queue console (web pages, JSON API, /metrics) beside `hub run`")
    cn.add_argument("--users", help="console users file (default $HUB_CONSOLE_USERS or <data_dir>/console-users.yaml)")
    cnsub = cn.add_subparsers(dest="action")
    cnu = cnsub.add_parser("user", help="add or replace a console user (password from $HUB_CONSOLE_PASSWORD or prompt)")
    cnu.add_argument("name")
    cnu.add_argument("--role", choices=["viewer", "operator", "admin"], required=True)
    cn.add_argument("--host", default="127.0.0.1")
    cn.add_argument("--port", type=int, default=8640)
    cn.add_argument("--session-minutes", type=float, default=480, help="sessions expire after this long")
    cn.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)")
    cn.add_argument("--log-level")
    cn.set_defaults(func=cmd_console)
    cnu.set_defaults(func=cmd_console)

    st = sub.add_parser("status", help="broker, nodes connected, alarms, rates, database, queues, dead letters")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    dq = sub.add_parser("dlq", help="dead letters: list, show, replay to the original route, discard")
    dqsub = dq.add_subparsers(dest="action", required=True)
    dql = dqsub.add_parser("list", help="browse hub.dlq (nothing is consumed)")
    dql.add_argument("--limit", type=int, default=200)
    dqs = dqsub.add_parser("show", help="one dead letter: headers, reason, payload decoded")
    dqs.add_argument("id", help="dead-letter key or message id")
    dqr = dqsub.add_parser("replay", help="replay to the original route (take, publish confirmed, then ack)")
    dqr.add_argument("ids", nargs="*", help="dead-letter keys or message ids")
    dqr.add_argument("--all", action="store_true", help="every dead letter that has an original route")
    dqd = dqsub.add_parser("discard", help="drop dead letters, with a reason kept in the audit")
    dqd.add_argument("ids", nargs="+")
    dqd.add_argument("--reason", required=True)
    for parser in (dql, dqs, dqr, dqd):
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=cmd_dlq)

    od = sub.add_parser("orders", help="dispatch and return orders: statistics and one order's history")
    osub = od.add_subparsers(dest="action", required=True)
    ost = osub.add_parser("stats", help="per province and day: sent, received, reply rate, reply times, overdue")
    ost.add_argument("--date", help="calendar day YYYY-MM-DD in stats_timezone (default today)")
    ost.add_argument("--json", action="store_true", help="print JSON (what the console shows)")
    ost.set_defaults(func=cmd_orders_stats)
    osh = osub.add_parser("show", help="one order: state, times, steps and timers")
    osh.add_argument("company", help="the originator's company code (公司编号), e.g. 44")
    osh.add_argument("serial", help="the serial number (流水号)")
    osh.add_argument("--json", action="store_true")
    osh.set_defaults(func=cmd_orders_show)

    sm = sub.add_parser("smpp", help="the SMPP adapter (SMS centre): run it, its status, its receipts")
    smsub = sm.add_subparsers(dest="action", required=True)
    smr = smsub.add_parser("run", help="run the adapter: adapter.smpp -> SMSC, receipts -> sms.status, MO -> sms.mo")
    smr.add_argument("--config", default="config/smpp.yaml", help="adapter configuration (docs/sms.md section 8)")
    smr.add_argument("--log-level")
    sms = smsub.add_parser("status", help="bound or not per SMSC, messages in progress, waiting receipts")
    sms.add_argument("--json", action="store_true")
    smc = smsub.add_parser("receipts", help="receipts that matched no submitted message")
    smc.add_argument("--unknown", action="store_true", help="only those past the grace period (unknown ids)")
    smc.add_argument("--limit", type=int, default=200)
    smc.add_argument("--json", action="store_true")
    smj = smsub.add_parser("schema", help="write the JSON schema of config/smpp.yaml")
    smj.add_argument("-o", "--output", help="file to write (default stdout), e.g. docs/schemas/smpp.schema.json")
    for parser in (smr, sms, smc, smj):
        parser.set_defaults(func=cmd_smpp)

    sf = sub.add_parser("sftp", help="the SFTP adapter: report and document files with success marks")
    sfsub = sf.add_subparsers(dest="action", required=True)
    sfr = sfsub.add_parser("run", help="watch outboxes and mirrored folders, run transfer jobs (adapter.sftp)")
    sfr.add_argument("--log-level")
    sfs = sfsub.add_parser("send", help="upload one file for a node now (a duplicate is not sent again)")
    sfs.add_argument("node", help="company code of the sending node, e.g. 44")
    sfs.add_argument("file", help="the file to send")
    sfs.add_argument("--log-level", default="WARNING")
    sft = sfsub.add_parser("status", help="endpoints, transfers by state, latest transfers, late reports")
    sft.add_argument("--node", help="only this node's transfers")
    sft.add_argument("--limit", type=int, default=20)
    sft.add_argument("--check", action="store_true", help="connect to every endpoint (host key, login)")
    sft.add_argument("--json", action="store_true")
    sfl = sfsub.add_parser("lint", help="check config/sftp.yaml against config/nodes.yaml")
    sfc = sfsub.add_parser("schema", help="write the JSON schema of config/sftp.yaml")
    sfc.add_argument("-o", "--output", help="file to write (default stdout), e.g. docs/schemas/sftp.schema.json")
    for parser in (sfr, sfs, sft, sfl, sfc):
        parser.add_argument("--config", help="adapter configuration (default <config_dir>/sftp.yaml)")
        parser.set_defaults(func=cmd_sftp)

    wp = sub.add_parser("wap", help="the WAP endpoint: XML over HTTP for the WAP business hall (docs/wap.md)")
    wpsub = wp.add_subparsers(dest="wap_command", required=True)
    wpr = wpsub.add_parser("run", help="serve POST /wap; queries and transactions go to the customer's province")
    wpr.add_argument("--log-level")
    wpl = wpsub.add_parser("lint", help="check config/wap.yaml")
    wps = wpsub.add_parser("schema", help="write the JSON schema of config/wap.yaml")
    wps.add_argument("-o", "--output", help="file to write (default stdout), e.g. docs/schemas/wap.schema.json")
    wph = wpsub.add_parser("hash-password", help="read a client secret from stdin, print its SHA-256")
    for parser in (wpr, wpl, wps, wph):
        parser.add_argument("--config", help="endpoint configuration (default <config_dir>/wap.yaml)")
        parser.set_defaults(func=cmd_wap)

    nm = sub.add_parser("nms", help="the NMS fault feed: interface table -> fault announcements (docs/nms.md)")
    nmsub = nm.add_subparsers(dest="nms_command", required=True)
    nmr = nmsub.add_parser("run", help="poll the NMS interface table; announce faults, clears and cut-overs")
    nmr.add_argument("--log-level")
    nml = nmsub.add_parser("lint", help="check config/nms.yaml")
    nms_ = nmsub.add_parser("schema", help="write the JSON schema of config/nms.yaml")
    nms_.add_argument("-o", "--output", help="file to write (default stdout), e.g. docs/schemas/nms.schema.json")
    nmi = nmsub.add_parser("create-table", help="create the interface table (for tests and demos; the NMS owns it)")
    for parser in (nmr, nml, nms_, nmi):
        parser.add_argument("--config", help="feed configuration (default <config_dir>/nms.yaml)")
        parser.set_defaults(func=cmd_nms)

    so = sub.add_parser("soap", help="the SOAP adapter: CRM delivery (Deliver) and the legacy nodes' intake (Submit)")
    sosub = so.add_subparsers(dest="action", required=True)
    sor = sosub.add_parser("run", help="deliver node.<code> of soap nodes to their CRMs; serve the intake")
    sor.add_argument("--delivery-only", action="store_true", help="only the CRM delivery side")
    sor.add_argument("--intake-only", action="store_true", help="only the intake endpoint")
    sor.add_argument("--log-level")
    sos = sosub.add_parser("status", help="CRM calls per node and outcome, the latest calls")
    sos.add_argument("--node", help="only this node's calls")
    sos.add_argument("--limit", type=int, default=20)
    sos.add_argument("--json", action="store_true")
    sol = sosub.add_parser("lint", help="check config/soap.yaml against config/nodes.yaml")
    soc = sosub.add_parser("schema", help="write the JSON schema of config/soap.yaml")
    soc.add_argument("-o", "--output", help="file to write (default stdout), e.g. docs/schemas/soap.schema.json")
    for parser in (sor, sos, sol, soc):
        parser.add_argument("--config", help="adapter configuration (default <config_dir>/soap.yaml)")
        parser.set_defaults(func=cmd_soap)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    except HubError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
