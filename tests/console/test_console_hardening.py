"""The console against an attacker over real HTTP: login CSRF, password guessing, a copied cookie
after logout, text injected through the page's query, secrets in configuration errors, and the
security headers on an internal error."""

from __future__ import annotations

import requests
from console_support import PASSWORD

from hub.console.access import Users
from protocols.errors import ConfigError


def login_form(session: requests.Session, url: str, user: str, password: str, token: str | None = None):
    token = token or session.get(f"{url}/api/csrf", timeout=10).json()["csrf_token"]
    return session.post(f"{url}/login", data={"user": user, "password": password, "csrf_token": token},
                        allow_redirects=False, timeout=10)


def test_login_csrf_token_is_bound_to_the_browser_that_fetched_it(console):
    # an attacker's page posts the attacker's credentials with a token the attacker fetched
    attacker_token = requests.get(f"{console.url}/api/csrf", timeout=10).json()["csrf_token"]
    victim = requests.Session()
    victim.get(f"{console.url}/login", timeout=10)          # the victim has its own pre-login cookie
    assert login_form(victim, console.url, "viewer1", PASSWORD, attacker_token).status_code == 403
    assert login_form(requests.Session(), console.url, "viewer1", PASSWORD, attacker_token).status_code == 403
    assert victim.get(f"{console.url}/api/me", timeout=10).status_code == 401
    # the login page's own token works in the browser that loaded it
    page = victim.get(f"{console.url}/login", timeout=10).text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = login_form(victim, console.url, "viewer1", PASSWORD, token)
    assert r.status_code == 303 and "HttpOnly" in r.headers["set-cookie"]
    assert victim.get(f"{console.url}/api/me", timeout=10).json()["user"] == "viewer1"


def test_password_guessing_is_throttled_and_logout_ends_copied_cookies(console):
    guesser = requests.Session()
    for i in range(5):
        assert "failed=1" in login_form(guesser, console.url, "operator1", f"guess-{i}").headers["location"]
    r = login_form(guesser, console.url, "operator1", PASSWORD)     # even the right one, for now
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.json()["error"] == "err.throttled" and "hub_session" not in r.headers.get("set-cookie", "")
    assert login_form(requests.Session(), console.url, "viewer1", PASSWORD).status_code == 303  # others may

    s = console.login("viewer1")
    copied = s.cookies.get("hub_session")
    assert s.post(f"{console.url}/logout", allow_redirects=False, timeout=10).status_code == 303
    assert requests.get(f"{console.url}/api/me", cookies={"hub_session": copied}, timeout=10).status_code == 401


def test_no_free_text_through_the_query_and_errors_keep_headers_and_secrets(console, tmp_path):
    s = console.login("operator1")
    page = s.get(f"{console.url}/dlq", params={"done": "请拨打 400-000 验证账户"}, timeout=10).text
    assert "400-000" not in page
    assert "replay:2:0" in s.get(f"{console.url}/dlq", params={"done": "replay:2:0"}, timeout=10).text

    def boom():
        raise RuntimeError("amqp://cs-hub:s3cret@broker")
    console.app.state.views.overview = boom
    r = s.get(f"{console.url}/api/overview", timeout=10)
    assert r.status_code == 500 and "s3cret" not in r.text and "Traceback" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff" and "default-src" in r.headers["content-security-policy"]

    broken = tmp_path / "users.yaml"
    broken.write_text('users: [{name: a, role: admin, password_hash: "scrypt$1$8$1$c2FsdA==$SECRETHASH!"}]')
    try:
        Users(broken).get("a")
    except ConfigError as exc:
        assert "SECRETHASH" not in str(exc) and "password_hash" in str(exc)
    else:
        raise AssertionError("an invalid users file must be refused")
