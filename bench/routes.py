"""Benchmark of routing by configuration: matching cost with 10, 100 and 1,000 routes, lint and reload.

In-process, no broker: Pipeline.process (authenticate, decode, parse, XSD-validate, check the
sender, match, resolve, re-encode) on ~300-byte notices, with N generated routes loaded beside
the shipped ones. Two shapes:
- by type: each route claims its own message type. The router indexes routes by type, so the
  rate must stay flat from 10 to 1,000 routes (flat_ratio = rate at 1,000 / rate at 10).
- by XPath: N routes claim the same type and differ by an XPath on the payload. These are
  tried one after the other, so the rate falls with N; shown so integrators know the cost.
Then the time to lint (load_config) and to reload (build the whole pipeline) 1,000 routes.

    python bench/routes.py [--quick]
Last line: RESULT routes type_msg_s_10=... type_msg_s_100=... type_msg_s_1000=... flat_ratio=...
           xpath_msg_s_10=... xpath_msg_s_100=... xpath_msg_s_1000=... lint_1000_ms=... reload_1000_ms=...
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.configuration import load_config  # noqa: E402
from hub.envelope import Incoming, Props  # noqa: E402
from hub.runtime import build_pipeline  # noqa: E402
from hub.settings import Settings  # noqa: E402

SIZES = (10, 100, 1000)


def progress(msg: str) -> None:
    print(f"[routes] {msg}", file=sys.stderr, flush=True)


def body(title: str) -> bytes:
    text = "广东用户在北京漫游时反映信号差,请协助处理。" * 6
    return (f'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>44</CompanyCode><To>11</To>'
            f"<Title>{title}</Title><Text>{text}</Text></Notice>").encode()


def workspace(folder: Path, n: int, shape: str) -> Settings:
    """config/ and routes/ copies with n generated routes (and, by type, n generated types)."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ROOT / "config", folder / "config")
    shutil.copytree(ROOT / "routes", folder / "routes", ignore=shutil.ignore_patterns("*.fixtures.yaml", "fixtures"))
    lines = ["version: 1", "routes:"]
    if shape == "type":
        with (folder / "config" / "message_types.yaml").open("a", encoding="utf-8") as f:
            for i in range(n):
                f.write(f"  bench.t{i:04d}:\n    description: {{zh: 压测 {i}, en: bench {i}}}\n"
                        "    root: h:Notice\n    schema: hub\n    sender: h:CompanyCode\n")
        for i in range(n):
            lines += [f"  - id: bench-{i:04d}", f"    from: {{type: bench.t{i:04d}, source: provinces}}",
                      '    to: [{node: "11"}]']
    else:
        for i in range(n):
            lines += [f"  - id: bench-{i:04d}",
                      f"    from: {{type: notice.text, source: provinces, xpath: \"h:Title = 'T{i:04d}'\"}}",
                      '    to: [{node: "11"}]']
    (folder / "routes" / "bench.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Settings(config_dir=folder / "config", routes_dir=folder / "routes", data_dir=folder / "var",
                    store_url=f"sqlite:///{folder / 'hub.sqlite3'}")


def messages(settings: Settings, n: int, shape: str, count: int) -> list[Incoming]:
    user = settings.broker_user("node-44")
    out = []
    for k in range(count):
        i = (k * 7919) % n          # spread over all routes, not the first few
        type_ = f"bench.t{i:04d}" if shape == "type" else "notice.text"
        props = Props(message_id=f"b-{k}", type=type_, user_id=user, content_type="application/xml",
                      content_encoding="utf-8")
        out.append(Incoming(body(f"T{i:04d}"), props, routing_key=type_))
    return out


def rate(settings: Settings, n: int, shape: str, count: int) -> float:
    pipeline = build_pipeline(settings)
    batch = messages(settings, n, shape, count)
    for m in batch[:50]:   # warm the XSD and XPath caches
        pipeline.process(m)
    started = time.perf_counter()
    for m in batch:
        outcome = pipeline.process(m)
        if outcome.route_id is None or not outcome.route_id.startswith("bench-"):
            raise SystemExit(f"message {m.props.message_id} was not routed by a bench route: "
                             f"{outcome.verdict} {outcome.error}")
    return count / (time.perf_counter() - started)


def timed(fn, repeat: int) -> float:
    """Median milliseconds of `repeat` runs."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and repeats (under a minute)")
    args = ap.parse_args()
    count, repeat = (2_000, 3) if args.quick else (20_000, 7)
    figures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-routes-") as tmp:
        for shape in ("type", "xpath"):
            for n in SIZES:
                settings = workspace(Path(tmp) / f"{shape}-{n}", n, shape)
                r = rate(settings, n, shape, count if shape == "type" or n < 1000 else count // 4)
                figures[f"{shape}_msg_s_{n}"] = f"{r:.0f}"
                progress(f"{shape:<5} {n:>5} routes: {r:,.0f} msg/s")
        settings = workspace(Path(tmp) / "lint-1000", 1000, "type")
        lint_ms = timed(lambda: load_config(settings.config_dir, settings.routes_dir), repeat)
        reload_ms = timed(lambda: build_pipeline(settings), repeat)
        progress(f"1,000 routes: lint {lint_ms:.0f} ms, reload (build the pipeline) {reload_ms:.0f} ms")
        xpath = workspace(Path(tmp) / "xpath-lint-1000", 1000, "xpath")
        xpath_lint_ms = timed(lambda: load_config(xpath.config_dir, xpath.routes_dir), 1)
        progress(f"1,000 XPath routes of one type: lint {xpath_lint_ms:.0f} ms (pairwise overlap check)")
    flat = float(figures["type_msg_s_1000"]) / float(figures["type_msg_s_10"])
    print(f"by type:  10 routes {figures['type_msg_s_10']} msg/s, 100 routes {figures['type_msg_s_100']} msg/s, "
          f"1,000 routes {figures['type_msg_s_1000']} msg/s (1,000 / 10 = {flat:.2f})")
    print(f"by XPath: 10 routes {figures['xpath_msg_s_10']} msg/s, 100 routes {figures['xpath_msg_s_100']} msg/s, "
          f"1,000 routes {figures['xpath_msg_s_1000']} msg/s")
    print(f"lint 1,000 routes: {lint_ms:.0f} ms; reload 1,000 routes: {reload_ms:.0f} ms; "
          f"lint 1,000 XPath routes of one type: {xpath_lint_ms:.0f} ms")
    print("RESULT routes " + " ".join(f"{k}={v}" for k, v in figures.items())
          + f" flat_ratio={flat:.2f} lint_1000_ms={lint_ms:.0f} reload_1000_ms={reload_ms:.0f}"
          + f" xpath_lint_1000_ms={xpath_lint_ms:.0f} quick={int(args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
