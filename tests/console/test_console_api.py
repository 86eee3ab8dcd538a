"""The console's JSON API against the real broker and a real uvicorn: every action and its refusals."""

from __future__ import annotations

import threading

import pytest
import requests
from console_support import PASSWORD, park, queue_ids
from running_hub import HubThread, Node
from waiting import wait_until

from hub.console import audit
from hub.console.deadletters import DeadLetterDesk


def test_login_required_and_wrong_password_refused(console):
    assert requests.get(f"{console.url}/api/overview", timeout=10).status_code == 401
    r = requests.get(f"{console.url}/queues", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    s = requests.Session()
    token = s.get(f"{console.url}/api/csrf", timeout=10).json()["csrf_token"]
    r = s.post(f"{console.url}/login", data={"user": "operator1", "password": "wrong", "csrf_token": token},
               allow_redirects=False, timeout=10)
    assert "failed=1" in r.headers["location"]
    assert s.get(f"{console.url}/api/me", timeout=10).status_code == 401
    # the login form itself needs its CSRF token
    r = s.post(f"{console.url}/login", data={"user": "operator1", "password": PASSWORD}, allow_redirects=False,
               timeout=10)
    assert r.status_code == 403


def test_pages_and_api_in_chinese_and_english(console, settings):
    s = console.login("viewer1")
    assert s.get(f"{console.url}/api/me", timeout=10).json() == {
        "user": "viewer1", "role": "viewer", "can_act": False,
        "expires_at": s.get(f"{console.url}/api/me", timeout=10).json()["expires_at"]}
    ov = s.get(f"{console.url}/api/overview", timeout=10).json()
    assert ov["broker"]["ok"] and ov["database"]["ok"]
    assert ov["broker"]["nodes"] and all(n["running"] for n in ov["broker"]["nodes"])
    assert any(c["code"] == "44" for c in ov["broker"]["connections"])
    qs = s.get(f"{console.url}/api/queues", timeout=10).json()
    kinds = {q["name"]: q["kind"] for q in qs["queues"]}
    assert kinds["hub.dlq"] == "dlq" and kinds["hub.in"] == "hub" and kinds["node.44"] == "node"
    assert any(k == "retry" for k in kinds.values())
    for path in ("/", "/queues", "/dlq", "/search?q=x", "/orders", "/knowledge", "/audit"):
        zh = s.get(f"{console.url}{path}", timeout=10)
        assert zh.status_code == 200, path
        assert "队列控制台" in zh.text
    en = s.get(f"{console.url}/queues?lang=en", timeout=10)
    assert "queue console" in en.text and s.cookies.get("hub_lang") == "en"
    assert s.get(f"{console.url}/orders", timeout=10).text.count("Orders in flight") == 1
    spec = requests.get(f"{console.url}/openapi.json", timeout=10).json()
    assert {"/api/dlq/replay", "/api/dlq/discard", "/api/search", "/api/queues"} <= set(spec["paths"])
    metrics = requests.get(f"{console.url}/metrics", timeout=10).text
    assert 'hub_queue_messages{kind="dlq",queue="hub.dlq"}' in metrics and "hub_store_up 1.0" in metrics


def test_payload_is_escaped_and_gbk_decoded(console, settings):
    park(settings, "xss-1", text="&lt;script&gt;alert(1)&lt;/script&gt; 广东")
    s = console.login("viewer1")
    items = s.get(f"{console.url}/api/dlq", timeout=10).json()["items"]
    (item,) = [i for i in items if i["message_id"] == "xss-1"]
    one = s.get(f"{console.url}/api/dlq/{item['key']}", timeout=10).json()
    assert one["payload_encoding"] == "gbk" and "广东" in one["payload"]
    assert one["reason_code"] == "RETRY_EXHAUSTED" and one["attempts"] == 5 and one["target"] == "hub.deliver/hub.in"
    page = s.get(f"{console.url}/dlq/{item['key']}", timeout=10).text
    assert "<script>alert" not in page and "&amp;lt;script&amp;gt;" in page
    assert queue_ids(settings, "hub.dlq") == ["xss-1"]  # browsing consumed nothing


@pytest.mark.parametrize("path,body", [("/api/dlq/replay", {"keys": ["r-1"]}),
                                       ("/api/dlq/discard", {"keys": ["r-1"], "reason": "test"})])
def test_viewer_refused_and_missing_csrf_refused(console, settings, path, body):
    park(settings, "r-1")
    viewer = console.login("viewer1")
    r = viewer.post(f"{console.url}{path}", json=body, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "err.forbidden"
    operator = console.login("operator1")
    r = operator.post(f"{console.url}{path}", json=body, headers={"X-CSRF-Token": ""}, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "err.csrf"
    r = operator.post(f"{console.url}{path}", json=body, headers={"X-CSRF-Token": viewer.headers["X-CSRF-Token"]},
                      timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "err.csrf"  # another session's token
    assert requests.post(f"{console.url}{path}", json=body, timeout=10).status_code == 401
    assert queue_ids(settings, "hub.dlq") == ["r-1"]
    assert not [a for a in audit.latest(console.store) if a.action in ("replay", "discard")]


def test_discard_needs_reason_and_is_audited(console, settings):
    park(settings, "d-1")
    park(settings, "d-2")
    admin = console.login("admin1")
    r = admin.post(f"{console.url}/api/dlq/discard", json={"keys": ["d-1"], "reason": ""}, timeout=10)
    assert r.status_code == 422
    r = admin.post(f"{console.url}/api/dlq/discard", json={"keys": ["d-1"], "reason": "test traffic"}, timeout=10)
    assert r.status_code == 200 and [d["message_id"] for d in r.json()["done"]] == ["d-1"]
    assert queue_ids(settings, "hub.dlq") == ["d-2"]
    rows = admin.get(f"{console.url}/api/audit?message_id=d-1", timeout=10).json()["items"]
    assert rows[0]["who"] == "admin1" and rows[0]["action"] == "discard" and rows[0]["detail"] == "test traffic"


def test_replay_delivers_and_search_shows_the_journey(console, settings, applied_topology):
    _, passwords = applied_topology
    park(settings, "rp-1")
    park(settings, "rp-2")
    hub = HubThread(settings).start()
    bj = Node(settings, "11", passwords[settings.broker_user("node-11")])
    try:
        op = console.login("operator1")
        r = op.post(f"{console.url}/api/dlq/replay", json={"keys": ["rp-1"]}, timeout=30)
        assert r.status_code == 200 and [d["message_id"] for d in r.json()["done"]] == ["rp-1"]
        _, props, body = bj.get(15)
        assert props.message_id == "rp-1" and "漫游用户投诉" in body.decode(props.content_encoding or "utf-8")
        assert queue_ids(settings, "hub.dlq") == ["rp-2"]
        r = op.post(f"{console.url}/api/dlq/replay", json={"all": True}, timeout=30)
        assert [d["message_id"] for d in r.json()["done"]] == ["rp-2"]
        assert bj.get(15)[1].message_id == "rp-2"
        found = wait_until(lambda: (d := op.get(f"{console.url}/api/search?q=rp-1", timeout=10).json())["results"]
                           and d, 15, 0.1, "the replay is journaled")
        (rec,) = found["results"]
        assert rec["status"] == "delivered" and rec["hops"][-1]["destination"] == "node.11"
        rows = [a for a in audit.latest(console.store) if a.action == "replay"]
        assert {(a.message_id, a.who, a.outcome) for a in rows} == {("rp-1", "operator1", "replayed"),
                                                                  ("rp-2", "operator1", "replayed")}
    finally:
        bj.close()
        hub.stop()


def test_interrupted_replay_loses_nothing(settings, applied_topology):
    ids = [f"int-{i}" for i in range(6)]
    for mid in ids:
        park(settings, mid)
    desk = DeadLetterDesk(settings)
    seen = []

    def crash_on_third(dl):
        seen.append(dl.message_id)
        if len(seen) == 3:
            raise KeyboardInterrupt("operator pressed ctrl-c between confirm and ack")

    with pytest.raises(KeyboardInterrupt):
        desk.replay(None, who="t", role="admin", after_publish=crash_on_third)
    replayed, parked = queue_ids(settings, "hub.in"), queue_ids(settings, "hub.dlq")
    assert replayed == ids[:3]
    assert sorted(parked) == sorted(ids[2:])  # the one between confirm and ack is in both: nothing lost
    # a stop requested mid-way leaves the rest parked too
    stop = threading.Event()
    desk.replay(None, who="t", role="admin", after_publish=lambda dl: stop.set(), stop=stop)
    assert len(queue_ids(settings, "hub.dlq")) == len(ids[2:]) - 1
