"""/admin in a real browser: Debian's headless Chromium, driven through its chromedriver
(Debian package chromium-driver) with Selenium, against the service under gunicorn.

A person logs in through the form (no test-only route, no injected cookie), sees the
four reports drawn as inline SVG and the flagged order in the anomaly list, opens it and
marks it resolved with a note; the order changes in the database.

Without chromium this is skipped with the reason, except under CI=true, where .ci/run
installs it and a missing browser is a failure."""
import os
import shutil
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import SEED_ORDER, order_row, wait_settled
from elife.extensions import db

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "test-admin-token"  # conftest's ADMIN_TOKEN
BUDGET_SECONDS = 60


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if not missing:
        return
    why = (f"{' and '.join(missing)} not installed (apt-get install -y chromium chromium-driver; "
           ".ci/run installs them)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the browser test cannot run: {why}")
    pytest.skip(why)


@pytest.fixture
def browser(tmp_path):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--window-size=1280,2000", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    # The path to chromedriver is given, so Selenium Manager (which would download one) never runs.
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _flagged_order(live, sandbox):
    """An order WeChat confirms paid for the wrong amount: the service flags it."""
    customer = live.login("browser-customer")
    r = requests.post(f"{live.url}/orders", headers=customer, timeout=10, json=SEED_ORDER)
    assert r.status_code == 201, r.text
    order = r.json()
    n = order["orderNumber"]
    sandbox.trade(n, order["totalFee"] + 100)  # WeChat will confirm another amount
    assert sandbox.pay(n).json() == {"errcode": 0, "errmsg": "OK"}  # its notice, to the live service
    return n, customer


def test_admin_page_in_a_real_browser(live, sandbox, ctx, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    n, customer = _flagged_order(live, sandbox)
    assert order_row(n)["anomaly_reason"] == "amount_mismatch"
    # One order paid and recharged for real, so the success-rate chart has a bar.
    paid = live.new_paid_ready_order(customer, phone="89000001")
    assert sandbox.pay(paid).status_code == 200
    assert wait_settled(paid)["recharge_status"] == "success"
    wait = WebDriverWait(browser, 15)

    # Not logged in: the 401 is the login page. Log in as a person would.
    browser.get(f"{live.url}/admin")
    wait.until(EC.presence_of_element_located((By.ID, "login-form")))
    browser.find_element(By.ID, "login-token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-name").send_keys("Bat")
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait.until(EC.presence_of_element_located((By.ID, "reports")))

    # The four reports, drawn as inline SVG with bars, and the ALERT banner.
    dom = browser.page_source
    (tmp_path / "admin.html").write_text(dom, encoding="utf-8")
    assert "signed in as Bat" in dom
    for section in ("report-success-rate", "report-anomalies", "report-delay", "report-pending"):
        svgs = browser.find_elements(By.CSS_SELECTOR, f"#{section} svg.chart")
        assert svgs, section
        assert browser.find_elements(By.CSS_SELECTOR, f"#{section} svg.chart rect.bar"), section
    status_bars = browser.find_elements(By.CSS_SELECTOR, "#report-success-rate svg.chart rect.bar")
    assert [b.get_attribute("data-label") for b in status_bars] == ["success"]
    assert float(status_bars[0].get_attribute("width")) > 100
    anomaly_bars = browser.find_elements(By.CSS_SELECTOR, "#report-anomalies svg.chart rect.bar")
    assert [b.get_attribute("data-label").split()[-1] for b in anomaly_bars] == ["amount_mismatch"]
    assert browser.find_element(By.ID, "alert-banner").is_displayed()
    # The bars are really drawn: they have a size on the screen.
    assert all(b.size["width"] > 0 and b.size["height"] > 0 for b in status_bars + anomaly_bars)

    # The anomaly list shows the flagged order with its masked phone.
    row = browser.find_element(By.CSS_SELECTOR, f'#anomaly-list tr[data-order="{n}"]')
    assert "88****88" in row.text and "amount_mismatch" in row.text
    assert browser.find_elements(By.CSS_SELECTOR, "#anomaly-list tr[data-order]") and paid not in dom
    browser.save_screenshot(str(tmp_path / "admin.png"))

    # Open it, and mark it resolved with a note.
    row.find_element(By.LINK_TEXT, n).click()
    wait.until(EC.presence_of_element_located((By.ID, "form-resolve")))
    assert "amount_mismatch" in browser.find_element(By.ID, "anomaly-details").text
    assert browser.find_element(By.ID, "resolve-name").get_attribute("value") == "Bat"
    assert not browser.find_elements(By.ID, "form-refund")  # unpaid: no refund offered
    browser.save_screenshot(str(tmp_path / "order-open.png"))
    note = "customer paid the right amount on a second try; this notice was a test"
    browser.find_element(By.ID, "resolve-note").send_keys(note)
    browser.find_element(By.ID, "resolve-button").click()
    wait.until(EC.presence_of_element_located((By.ID, "resolved")))
    assert "Marked resolved." in browser.find_element(By.CSS_SELECTOR, ".msg.ok").text
    assert "anomaly_resolved" in browser.find_element(By.ID, "order-events").text
    browser.save_screenshot(str(tmp_path / "order.png"))

    # The order changed in the database, with who and why in the audit trail.
    db.session.commit()
    row = order_row(n)
    assert row["anomaly_reason"] is None and row["resolved_at"] is not None
    assert row["resolved_note"] == note and row["payment_status"] == "unpaid"
    events = db.session.execute(sa.text("SELECT event, actor, note FROM order_events WHERE order_number = :n"),
                                {"n": n}).mappings().all()
    assert [dict(e) for e in events] == [{"event": "anomaly_resolved", "actor": "admin:Bat", "note": note}]

    # Back on the list it is gone; logging out ends the session.
    browser.get(f"{live.url}/admin")
    wait.until(EC.presence_of_element_located((By.ID, "no-anomalies")))
    browser.find_element(By.CSS_SELECTOR, "form[action='/admin/logout'] button").click()
    wait.until(EC.presence_of_element_located((By.ID, "login-form")))
    browser.get(f"{live.url}/admin")
    wait.until(EC.presence_of_element_located((By.ID, "login-form")))
    assert time.monotonic() - started < BUDGET_SECONDS
