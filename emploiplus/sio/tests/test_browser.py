"""The DEBUG demo chat page in a real browser (Debian's headless Chromium, driven through
chromedriver): two users' halves of the page, socket.io-client from npm, a message typed on
one side arrives on the other."""

from __future__ import annotations

import shutil

import pytest
from django.test import Client

from emploiplus.testing import asgi_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_two_users_chat_through_socketio_in_a_real_browser(node, browser, alice, bob):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with asgi_server(DEBUG="1") as (address, _):
        browser.get(f"http://{address}/dev/chat/?a={alice.email}&b={bob.email}")
        wait = WebDriverWait(browser, 20)
        panes = browser.find_elements(By.CSS_SELECTOR, "section")
        assert [p.get_attribute("data-user") for p in panes] == [alice.email, bob.email]
        wait.until(lambda d: all(p.find_element(By.CLASS_NAME, "state").text.startswith("connecté") for p in panes))
        panes[0].find_element(By.NAME, "content").send_keys("Bonjour depuis le navigateur")
        panes[0].find_element(By.CSS_SELECTOR, "button").click()
        wait.until(lambda d: "Bonjour depuis le navigateur" in panes[1].find_element(By.TAG_NAME, "ol").text)
        assert f"{alice.email} : Bonjour depuis le navigateur" in panes[1].find_element(By.TAG_NAME, "ol").text


def test_the_demo_chat_is_refused_without_debug(settings, alice, bob):
    settings.DEBUG = False
    assert Client().get(f"/dev/chat/?a={alice.email}&b={bob.email}").status_code == 404
    assert Client().get("/dev/socket.io.min.js").status_code == 404
