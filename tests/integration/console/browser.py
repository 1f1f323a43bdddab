"""A real headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
`deploy/local/browser`, which `make test` runs), driven by selenium from a worker thread: the
services under test run on the test's event loop, so no browser call may block it.

Controls are found the way people find them: by their label, their button text, their role."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

T = TypeVar("T")
DESKTOP = (1280, 1000)
PHONE = (390, 844)


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        f"none of {names} is installed: run deploy/local/browser (make test does) to install Debian's chromium and "
        "chromium-driver"
    )


def start_chrome() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # No Selenium Manager: the driver is the Debian package's, never a download.
    return webdriver.Chrome(service=Service(executable_path=_binary("chromedriver")), options=options)


class Browser:
    """Async steps over a selenium driver; each runs in a thread."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, screenshots: Path) -> None:
        self.driver, self.base_url, self.screenshots = driver, base_url, screenshots
        self.console_errors: list[dict[str, Any]] = []

    async def run(self, step: Callable[[webdriver.Chrome], T]) -> T:
        return await asyncio.to_thread(step, self.driver)

    async def open(self, path: str) -> None:
        await self.run(lambda d: d.get(self.base_url + path))

    async def fill(self, label: str, text: str, within: str = "") -> None:
        def step(d: webdriver.Chrome) -> None:
            field = _labelled(d, label, within)
            field.clear()
            field.send_keys(text)

        await self.run(step)

    async def choose(self, label: str, option_text: str, within: str = "") -> None:
        def step(d: webdriver.Chrome) -> None:
            field = _labelled(d, label, within)
            field.find_element(By.XPATH, f".//option[contains(normalize-space(.), {_quoted(option_text)})]").click()

        await self.run(step)

    async def tick(self, label_text: str, within: str = "") -> None:
        def step(d: webdriver.Chrome) -> None:
            scope = d.find_element(By.CSS_SELECTOR, within) if within else d
            scope.find_element(
                By.XPATH, f".//label[contains(normalize-space(.), {_quoted(label_text)})]//input"
            ).click()

        await self.run(step)

    async def press(self, name: str, within: str = "") -> None:
        """Click the button people know by its text or accessible name."""

        def step(d: webdriver.Chrome) -> None:
            scope = d.find_element(By.CSS_SELECTOR, within) if within else d
            quoted = _quoted(name)
            scope.find_element(
                By.XPATH,
                f".//button[normalize-space(.)={quoted} or @aria-label={quoted}] | .//a[normalize-space(.)={quoted}]",
            ).click()

        await self.run(step)

    async def text(self, css: str = "body") -> str:
        return await self.run(lambda d: d.find_element(By.CSS_SELECTOR, css).text)

    async def until_text(self, css: str, wanted: str, timeout_s: float = 20.0) -> float:
        """Wait until the element shows `wanted` (no reload); the seconds it took."""

        def step(d: webdriver.Chrome) -> float:
            started = time.monotonic()
            last = ""
            while time.monotonic() - started < timeout_s:
                try:
                    last = d.find_element(By.CSS_SELECTOR, css).text
                    if wanted in last:
                        return time.monotonic() - started
                except (NoSuchElementException, StaleElementReferenceException):
                    pass
                time.sleep(0.05)
            raise AssertionError(f"{css} did not show {wanted!r} within {timeout_s}s; it shows {last!r}")

        return await self.run(step)

    async def until_filled(self, css: str, timeout_s: float = 20.0) -> str:
        """Wait until the element shows any text (an answer swapped in); that text."""

        def step(d: webdriver.Chrome) -> str:
            started = time.monotonic()
            while time.monotonic() - started < timeout_s:
                try:
                    found = d.find_element(By.CSS_SELECTOR, css).text.strip()
                    if found:
                        return found
                except (NoSuchElementException, StaleElementReferenceException):
                    pass
                time.sleep(0.05)
            raise AssertionError(f"{css} stayed empty for {timeout_s}s")

        return await self.run(step)

    async def mark_page(self) -> None:
        """A marker a reload would wipe: `unreloaded()` tells it is still the same page."""
        await self.run(lambda d: d.execute_script("window.__adledgerSamePage = true;"))

    async def unreloaded(self) -> bool:
        return bool(await self.run(lambda d: d.execute_script("return window.__adledgerSamePage === true;")))

    async def screenshot(self, name: str, also: Path | None = None) -> Path:
        path = self.screenshots / f"{name}.png"
        self.screenshots.mkdir(parents=True, exist_ok=True)

        def step(d: webdriver.Chrome) -> None:
            d.execute_script("window.scrollTo(0, 0);")
            d.save_screenshot(str(path))

        await self.run(step)
        if also is not None:
            also.parent.mkdir(parents=True, exist_ok=True)
            also.write_bytes(path.read_bytes())
        return path

    async def size(self, width: int, height: int) -> None:
        await self.run(lambda d: d.set_window_size(width, height))

    async def sign_out_everyone(self) -> None:
        await self.run(lambda d: d.delete_all_cookies())

    async def errors(self) -> list[dict[str, Any]]:
        """The browser console's errors since the last call (SEVERE: script errors, failed loads)."""

        def step(d: webdriver.Chrome) -> list[dict[str, Any]]:
            try:
                entries = d.get_log("browser")
            except WebDriverException:
                return []
            return [entry for entry in entries if entry.get("level") == "SEVERE"]

        found = await self.run(step)
        self.console_errors += found
        return found


def _quoted(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    return "concat('" + "', \"'\", '".join(text.split("'")) + "')"


def _labelled(d: webdriver.Chrome, label: str, within: str) -> WebElement:
    scope = d.find_element(By.CSS_SELECTOR, within) if within else d
    found = scope.find_element(By.XPATH, f".//label[normalize-space(.)={_quoted(label)}]")
    target = found.get_attribute("for")
    if target:
        return scope.find_element(By.ID, target)
    return found.find_element(By.XPATH, ".//input|.//select")
