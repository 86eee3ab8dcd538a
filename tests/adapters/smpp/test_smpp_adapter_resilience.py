"""The SMSC dies, limits us, refuses us; the adapter restarts: nothing lost, duplicates bounded.

docs/sms.md section 4 is the policy under test: a part accepted (submit_sm_resp ESME_ROK
recorded) is never sent again; a part without a response when the link broke is re-sent
after reconnecting, so at most `window` parts per broken connection can reach the
customer twice, and each such duplicate shows up as an unknown receipt (the first copy's
id was never stored by the hub).
"""

from __future__ import annotations

from collections import Counter

from smpp_bus import NS, statuses
from smsc_peer import decode_part, smpp_config
from waiting import wait_until

from adapters.smpp import commands
from adapters.smpp.ledger import Ledger


def _texts(n: int, prefix: str) -> dict[str, str]:
    return {f"{prefix}-{i}": f"第{i}条：您的验证码为{100000 + i}，五分钟内有效。" for i in range(n)}


def _copies(smsc) -> Counter:
    """How many accepted submit_sm each (destination, UDH, text) got: >1 is a duplicate SMS."""
    return Counter((e["destination"], e["short_message"]) for e in smsc.accepted())


def test_smsc_killed_mid_stream_and_restarted_loses_nothing(smscs, adapters, bus, settings, capsys):
    window = 20
    smsc = smscs("smsc-a", "--latency-ms", "5")
    adapter = adapters(smpp_config(smsc, smsc={"window": window, "tps": 2000}))
    texts = _texts(400, "k")
    for i, (ref, text) in enumerate(texts.items()):
        bus.send(ref, f"1390200{i:04d}", text)
    wait_until(lambda: len(smsc.accepted()) >= 120, 20, 0.01, "120 submits accepted before the kill")
    smsc.kill()                                        # mid-stream: submits in flight, receipts owed
    wait_until(lambda: not adapter.health()["smscs"][0]["bound"], 10, 0.02, "the adapter sees the SMSC gone")
    smsc.start(resume=True)                            # same port, same files; owes its receipts
    got = statuses(bus, "node.44", len(texts), timeout=60)

    assert set(got) == set(texts)                      # nothing lost: one final status each
    assert {r.findtext("s:Status", namespaces=NS) for r in got.values()} == {"delivered"}
    copies = _copies(smsc)
    assert len(copies) == len(texts)                   # every SMS reached the SMSC ...
    twice = {k: n for k, n in copies.items() if n > 1}
    assert all(n == 2 for n in twice.values())         # ... at most twice,
    assert len(twice) <= window                        # and only what was in the window at the kill
    # The duplicates are visible: their first copies' receipts match no stored id.
    wait_until(lambda: adapter.health()["unknown_receipts"] >= len(twice), 10, 0.1,
               f"{len(twice)} unknown receipts for the duplicated submits")
    unknown = Ledger(adapter.store).waiting_receipts("unknown")
    first_copy_ids = {e["message_id"] for e in smsc.accepted()
                      if (e["destination"], e["short_message"]) in twice}
    assert {r["message_id"].lstrip("0").lower() for r in unknown} <= {
        i.lstrip("0").lower() for i in first_copy_ids} | {str(int(i, 16)) for i in first_copy_ids}
    assert len(unknown) == len(twice)
    # ... and an operator sees them.
    assert commands.receipts(type("A", (), {"unknown": True, "limit": 100, "json": False})(), settings) == 0
    assert f"{len(twice)} unknown receipt(s)" in capsys.readouterr().out


def test_failover_to_the_standby_smsc_and_back(smscs, adapters, bus):
    primary = smscs("smsc-a", "--latency-ms", "5")
    standby = smscs("smsc-b")
    adapter = adapters(smpp_config(primary, standby))
    wait_until(lambda: all(s["bound"] for s in adapter.health()["smscs"]), 10, 0.05, "both SMSCs bound")
    texts = _texts(200, "f")
    for i, (ref, text) in enumerate(texts.items()):
        bus.send(ref, f"1390300{i:04d}", text)
    wait_until(lambda: len(primary.accepted()) >= 50, 20, 0.01, "50 submits on the primary")
    primary.kill()
    got = statuses(bus, "node.44", len(texts) - 60, timeout=30)   # the standby carries on
    assert len(standby.accepted()) > 0
    primary.start(resume=True)                     # back: its owed receipts come in, correlated
    got = statuses(bus, "node.44", len(texts), timeout=60, got=got)
    assert set(got) == set(texts)
    smscs_used = {r.findtext("s:Smsc", namespaces=NS) for r in got.values()}
    assert smscs_used == {"smsc-a", "smsc-b"}
    both = _copies(primary) + _copies(standby)
    assert len(both) == len(texts) and sum(n - 1 for n in both.values()) <= 20


def test_a_peer_limiting_tps_and_window_costs_time_not_errors(smscs, adapters, bus):
    """The SMSC allows 100 submits/s and 4 waiting responses; the adapter is configured for more.
    ESME_RTHROTTLED and ESME_RMSGQFUL pause the link; every SMS is delivered, nothing is
    retried through the bus or dead-lettered, no part is sent twice."""
    smsc = smscs("smsc-a", "--tps", "100", "--window", "4", "--latency-ms", "20")
    texts = _texts(150, "t")
    long_ones = {f"tl-{i}": "长消息测试：" + "尊敬的客户，您好。" * 12 for i in range(10)}
    for i, (ref, text) in enumerate((texts | long_ones).items()):
        bus.send(ref, f"1390400{i:04d}", text)
    # queued before the adapter starts: its first burst fills its window of 20 at once
    adapter = adapters(smpp_config(smsc, smsc={"window": 20, "tps": 1000}))
    got = statuses(bus, "node.44", len(texts) + len(long_ones), timeout=60)
    assert {r.findtext("s:Status", namespaces=NS) for r in got.values()} == {"delivered"}
    answers = Counter(s["status"] for s in smsc.submits())
    assert answers[0x58] > 0 and answers[0x14] > 0, answers     # the peer did throttle us
    assert set(answers) == {0, 0x58, 0x14}
    assert bus.depth("hub.dlq") == 0
    health = adapter.health()
    assert health["retried"] == 0 and health["dead_lettered"] == 0
    assert health["smscs"][0]["throttled"] == answers[0x58] + answers[0x14]
    assert max(_copies(smsc).values()) == 1
    refs = Counter(decode_part(e)[0][0] for e in smsc.accepted() if decode_part(e)[0])
    assert len(refs) == len(long_ones)                           # one 16-bit reference each


def test_a_bad_password_is_refused_clearly(smscs, adapters, bus, caplog, settings, capsys):
    smsc = smscs("smsc-a")
    adapter = adapters(smpp_config(smsc), passwords={"smsc-a": "wrong-pw"}, wait=False)
    wait_until(lambda: adapter.health()["smscs"][0]["state"] == "refused", 10, 0.05, "the bind is refused")
    health = adapter.health()
    assert not health["bound"]
    link = health["smscs"][0]
    assert link["reason"] == "SMPP_INVALID_PASSWORD"
    assert "invalid password" in link["error"] and "ESME_RINVPASWD" in link["error"]
    logged = [r for r in caplog.records if r.levelname == "ERROR" and "refused the bind" in r.getMessage()]
    assert logged and getattr(logged[0], "reason_code", None) == "SMPP_INVALID_PASSWORD"
    assert "wrong-pw" not in caplog.text and "wrong-pw" not in str(health)
    adapter.write_health()                                   # what `hub smpp status` reads
    assert commands.status(type("A", (), {"json": False})(), settings) == 1
    shown = capsys.readouterr().out
    assert "REFUSED" in shown and "SMPP_INVALID_PASSWORD" in shown and "wrong-pw" not in shown
    bus.send("bp-1", "13902001234", "绑定失败时消息等待")
    wait_until(lambda: adapter.health()["jobs"] == 1, 10, 0.02, "the adapter holds the message")
    assert smsc.submits() == [] and bus.depth("node.44") == 0   # nothing sent, nothing lost: it waits


def test_receipts_after_an_adapter_restart_still_correlate(smscs, adapters, bus, settings):
    """The adapter stops while receipts are still owed (2 s receipt delay) and some come before
    their submit_sm_resp; a new adapter process correlates them from the ledger."""
    smsc = smscs("smsc-a", "--receipt-delay-ms", "2000", "--early-receipts", "0.2")
    config = smpp_config(smsc)
    first = adapters(config)
    texts = _texts(60, "rs")
    for i, (ref, text) in enumerate(texts.items()):
        bus.send(ref, f"1390500{i:04d}", text)
    wait_until(lambda: first.health()["accepted_messages"] >= len(texts), 20, 0.02, "all submitted")
    early = statuses(bus, "node.44", 1, timeout=10)     # the early receipts' messages are done
    first.stop()
    second = adapters(config)
    got = statuses(bus, "node.44", len(texts), timeout=30, got=early)
    assert set(got) == set(texts)
    assert Ledger(second.store).waiting_receipts() == []
    assert second.health()["unknown_receipts"] == 0
    # finished in the ledger once the broker confirmed each sms.status
    wait_until(lambda: Ledger(second.store).counts()["open"] == 0, 10, 0.05, "no message is open")
