"""The status page people look at, in a real headless Chromium: running, CRM down, a failure.

Each state is asserted on what the browser rendered (not on the HTML source),
and a screenshot of each is saved under the test's output folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from acct2crm.settings import Settings
from tests.support.browser import headless_chromium
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def base_url(settings: Settings) -> str:
    return settings.status_url.removesuffix("/status")


def shown_until(
    driver: webdriver.Chrome, url: str, check: Callable[[webdriver.Chrome], bool],
    timeout_s: float = 90.0,
) -> None:
    """Load ``url`` until what the browser shows passes ``check``."""
    deadline = time.monotonic() + timeout_s
    while True:
        driver.get(url)
        if check(driver):
            return
        assert time.monotonic() < deadline, driver.find_element(By.TAG_NAME, "body").text
        time.sleep(1.0)


def tenant_section(driver: webdriver.Chrome, tenant: str = "default") -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'section.tenant[data-tenant="{tenant}"]')


def test_status_page_in_a_browser(
    stack_settings: Settings, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    home = base_url(stack_settings) + "/"
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("W")

    # running: the state, the lag line, today's counts and the connector
    shown_until(browser, home, lambda d: tenant_section(d).get_attribute("data-state") == "running")
    section = tenant_section(browser)
    assert "Running" in section.find_element(By.CSS_SELECTOR, ".state").text
    assert "Lag:" in section.text and "Today (since" in section.text
    connector = browser.find_element(By.CSS_SELECTOR, "section.connector")
    assert "RUNNING" in connector.text and "task 0: RUNNING" in connector.text
    # the page refreshes itself, with no script
    refresh = browser.find_element(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
    assert refresh.get_attribute("content") == "5"
    browser.save_screenshot(str(tmp_path / "status-running.png"))

    # a failure listed: the CRM answers 422 to a bad tax code; the code carries markup,
    # which the browser must show as text (escaped), never run or render
    code = f"{tag}<i>&x"
    row = pipe.insert(code, tax_code="123")
    [failed] = pipe.results([row], 1)
    assert failed["action"] == "failed"

    def failure_listed(d: webdriver.Chrome) -> bool:
        return code in tenant_section(d).find_element(By.CSS_SELECTOR, ".failures").text

    shown_until(browser, home, failure_listed)
    failures = tenant_section(browser).find_element(By.CSS_SELECTOR, "table.failures")
    listed = [r for r in failures.find_elements(By.TAG_NAME, "tr") if code in r.text]
    assert listed, failures.text
    assert "tax_code" in listed[0].text  # the reason, as the CRM gave it
    assert not browser.find_elements(By.CSS_SELECTOR, "table.failures i")  # no markup made
    browser.save_screenshot(str(tmp_path / "status-failure.png"))
    # its link opens the customer's history
    listed[0].find_element(By.LINK_TEXT, code).click()
    assert code in browser.find_element(By.TAG_NAME, "h1").text
    history = browser.find_element(By.CSS_SELECTOR, 'section.history[data-tenant="default"]')
    assert "failed" in history.text and "tax_code" in history.text
    browser.save_screenshot(str(tmp_path / "history.png"))

    # CRM down: waiting for the CRM, why, and since when
    pipe.faults(down=True)
    try:
        pipe.insert(f"{tag}-DOWN")

        def waiting(d: webdriver.Chrome) -> bool:
            return tenant_section(d).get_attribute("data-state") == "waiting_for_crm"

        shown_until(browser, home, waiting)
        state = tenant_section(browser).find_element(By.CSS_SELECTOR, "p").text
        assert "Waiting for the CRM" in state
        assert "since 20" in state and "503" in state  # when it started, and the CRM's answer
        browser.save_screenshot(str(tmp_path / "status-crm-down.png"))
    finally:
        pipe.faults(down=False)
    shown_until(browser, home, lambda d: tenant_section(d).get_attribute("data-state") == "running")
    pipe.close()
