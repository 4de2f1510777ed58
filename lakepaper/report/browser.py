"""Load the paper in headless Chromium: every image must render and the console must stay clean.

Uses Selenium with the system's Chromium and chromedriver (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/install-browser`` does it), started with ``--headless --no-sandbox
--disable-gpu``. ``LAKEPAPER_CHROMIUM`` and ``LAKEPAPER_CHROMEDRIVER`` point at other binaries.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it with `.ci/install-browser` (Debian: apt-get install chromium chromium-driver)"


class BrowserUnavailable(RuntimeError):
    """No Chromium, chromedriver or selenium here; the message says which and how to get it."""


@dataclass
class PageReport:
    url: str
    title: str
    images: int
    broken: list[str] = field(default_factory=list)  # alt text of images with naturalWidth 0
    external: list[str] = field(default_factory=list)  # src of images not embedded as data: URIs
    console: list[str] = field(default_factory=list)  # SEVERE console entries
    banner: str = ""  # text of the simulated-world banner, if any
    screenshot: Path | None = None
    seconds: float = 0.0
    browser: str = ""

    @property
    def ok(self) -> bool:
        return self.images > 0 and not self.broken and not self.external and not self.console

    def problems(self) -> list[str]:
        out = []
        if self.images == 0:
            out.append("the page has no images")
        out += [f"image does not render (naturalWidth 0): {a}" for a in self.broken]
        out += [f"image not embedded: {s}" for s in self.external]
        out += [f"console error: {c}" for c in self.console]
        return out


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or :class:`BrowserUnavailable`."""
    chromium = os.environ.get("LAKEPAPER_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    driver = os.environ.get("LAKEPAPER_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not found on PATH; {INSTALL_HINT}")
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        raise BrowserUnavailable("selenium is not installed: pip install -e '.[dev]'") from exc
    return str(chromium), str(driver)


def start_chromium(width: int, height: int, *, scripts: bool = True):
    """Headless Chromium (selenium) of ``width`` x ``height``, logging the console; ``scripts`` False: JavaScript off.

    Raises:
        BrowserUnavailable: no Chromium or chromedriver, or it does not start.
    """
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException

    chromium, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not scripts:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    try:
        return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    except WebDriverException as exc:
        raise BrowserUnavailable(f"Chromium did not start ({exc.msg or exc}); {INSTALL_HINT}") from exc


def save_screenshot(driver, path: str | os.PathLike[str]) -> Path:
    """The browser's viewport as a PNG at ``path``, written atomically."""
    shot = Path(path)
    shot.parent.mkdir(parents=True, exist_ok=True)
    tmp = shot.with_name(f".{shot.name}.{os.getpid()}.partial.png")
    driver.save_screenshot(str(tmp))
    os.replace(tmp, shot)
    return shot


def console_errors(driver) -> list[str]:
    """The SEVERE messages of the browser's console."""
    return [e.get("message", str(e)) for e in driver.get_log("browser") if str(e.get("level", "")).upper() == "SEVERE"]


def check_page(
    page: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    height: int = 1800,
    timeout: float = 90,
) -> PageReport:
    """Open ``page`` (a file) in headless Chromium and report images, console errors and the banner.

    Args:
        page: the HTML file.
        screenshot: where to save a PNG of the top of the page (``width`` x ``height``), or None.
        timeout: seconds allowed for loading the page and decoding its images.
    """
    t0 = time.perf_counter()
    driver = start_chromium(width, height)
    try:
        driver.set_page_load_timeout(timeout)
        url = Path(page).resolve().as_uri()
        driver.get(url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = driver.execute_script(
                "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"
            )
            if ready:
                break
            time.sleep(0.1)
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt || i.src.slice(0, 60), i.naturalWidth, "
            "i.getAttribute('src').slice(0, 5)])"
        )
        banner = driver.execute_script("const b = document.querySelector('.banner'); return b ? b.innerText : ''")
        shot = save_screenshot(driver, screenshot) if screenshot is not None else None
        console = console_errors(driver)
        return PageReport(
            url=url,
            title=driver.title,
            images=len(images),
            broken=[alt for alt, w, _ in images if not w],
            external=[alt for alt, _, src in images if src != "data:"],
            console=console,
            banner=(banner or "").strip(),
            screenshot=shot,
            seconds=time.perf_counter() - t0,
            browser=str(driver.capabilities.get("browserVersion", "")),
        )
    finally:
        driver.quit()
