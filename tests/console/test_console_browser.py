"""End to end in headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
log in, find a dead-lettered message, replay it, see it delivered. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
from console_support import ARTIFACTS, PASSWORD, park
from running_hub import HubThread, Node
from selenium import webdriver  # a dev dependency: a missing install fails, never skips
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from waiting import wait_until

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("Debian's chromium and chromium-driver are needed (scripts/bootstrap installs them)")
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_login_find_replay_see_delivered(browser, console, settings, applied_topology):
    _, passwords = applied_topology
    park(settings, "e2e-gd-0001", text="广东漫游用户投诉:信号差,请协助处理")
    hub = HubThread(settings).start()
    bj = Node(settings, "11", passwords[settings.broker_user("node-11")])
    try:
        b = browser
        b.get(f"{console.url}/dlq")
        assert "/login" in b.current_url  # not logged in: sent to the login page
        b.find_element(By.ID, "user").send_keys("operator1")
        b.find_element(By.ID, "password").send_keys(PASSWORD)
        b.save_screenshot(str(ARTIFACTS / "console-1-login.png"))
        b.find_element(By.ID, "login-submit").click()
        row = wait_until(lambda: b.find_elements(By.CSS_SELECTOR, 'tr[data-message-id="e2e-gd-0001"]'), 15, 0.1,
                         "the dead letter is listed")[0]
        assert "RETRY_EXHAUSTED" in row.text
        b.save_screenshot(str(ARTIFACTS / "console-2-dead-letters.png"))
        row.find_element(By.TAG_NAME, "a").click()
        payload = wait_until(lambda: b.find_elements(By.ID, "payload"), 10, 0.1, "the dead letter opens")[0]
        assert "广东漫游用户投诉" in payload.text
        b.save_screenshot(str(ARTIFACTS / "console-3-inspect.png"))
        b.find_element(By.ID, "replay-one").click()
        wait_until(lambda: b.find_elements(By.ID, "dlq-done"), 15, 0.1, "the replay is reported")
        _, props, _ = bj.get(15)
        assert props.message_id == "e2e-gd-0001"
        b.get(f"{console.url}/search?q=e2e-gd-0001")
        journey = wait_until(lambda: (b.refresh(), b.find_elements(By.CSS_SELECTOR, ".status-delivered"))[1],
                             15, 0.3, "the search shows the message delivered")
        assert journey and "node.11" in b.find_element(By.CSS_SELECTOR, ".journey").text
        b.save_screenshot(str(ARTIFACTS / "console-4-delivered.png"))
        b.get(f"{console.url}/queues?lang=en")
        wait_until(lambda: b.find_element(By.ID, "dead-letter-count").text == "0", 10, 0.2, "no dead letters left")
        assert "queue console" in b.title
        b.save_screenshot(str(ARTIFACTS / "console-5-queues-en.png"))
    finally:
        bj.close()
        hub.stop()
