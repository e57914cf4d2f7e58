"""Fixtures of the report tests: manifest-only curated outputs, and headless Chromium.

The browser is Debian's `chromium` + `chromium-driver`, which `make test` installs when
missing (`make browser`); Selenium is given both paths, so its driver manager never looks
for a download (tests stay offline). Without them the browser tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import CLIP_SCHEMA, VIDEO_SCHEMA, empty_clip, empty_video

REASONS = ("blurry", "low_motion", "text_overlay", "duplicate")
# A caption that would run script if the page ever parsed user text as HTML.
EVIL = "</script><script>window.__pwned = 1</script><img src=x onerror='window.__pwned=2'> {{JS}}"


def write_manifest(out: Path, n_videos: int, clips_per_video: int, captions: dict) -> Path:
    """A curated output with manifests only (no staged mp4s): video v's clip k lasts 1 s
    from 1.25 k s, every 4th clip rejected with a reason in turn; `captions`: {index: text}."""
    out.mkdir(parents=True, exist_ok=True)
    clips, videos = [], []
    for v in range(n_videos):
        vid = f"{v:016x}"
        for k in range(clips_per_video):
            i = v * clips_per_video + k
            start = k * 30
            reasons = [REASONS[(i // 4) % len(REASONS)]] if i % 4 == 3 else []
            clips.append(
                empty_clip(
                    clip_id=f"{vid}_{start:07d}_{start + 24:07d}",
                    video_id=vid,
                    source_path=f"/footage/v{v}.mp4",
                    scene_index=k,
                    window_index=0,
                    start_frame=start,
                    end_frame=start + 24,
                    start_s=start / 24,
                    end_s=start / 24 + 1.0,
                    duration_s=1.0,
                    kept=not reasons,
                    reject_reasons=reasons,
                    caption=captions.get(i, f"clip {i} of video {v}"),
                    motion_score=0.001 * (1 + i % 50),
                    sharpness=5.0 + i % 100,
                )
            )
        duration = clips_per_video * 1.25
        videos.append(
            empty_video(
                video_id=vid,
                source_path=f"/footage/v{v}.mp4",
                status="ok",
                duration_s=duration,
                n_clips=clips_per_video,
            )
        )
    pq.write_table(pa.Table.from_pylist(clips, CLIP_SCHEMA), out / "clips.parquet")
    pq.write_table(pa.Table.from_pylist(videos, VIDEO_SCHEMA), out / "videos.parquet")
    config = {"filters": {"motion": {"min_score": 0.002}, "blur": {"min_sharpness": 10.0}}}
    what_if = {
        "filters.blur.min_sharpness": {
            "reason": "blurry",
            "chosen": 10.0,
            "kept_s": [[5.0, 9.0], [10.0, 8.0], [20.0, 6.0]],
        }
    }
    (out / "summary.json").write_text(json.dumps({"config": config, "what_if": what_if}))
    return out


@pytest.fixture(scope="session")
def manifest() -> Callable[..., Path]:
    """`manifest(out, n_videos, clips_per_video, captions)`: see `write_manifest`."""
    return write_manifest


@pytest.fixture(scope="session")
def evil() -> str:
    return EVIL


@pytest.fixture(scope="module")
def curated_copy(junk_curated, tmp_path_factory) -> Path:
    """A private copy of the junk footage's curated output (kept and rejected clips of
    every kind, CLIP scores, what-if), so the tests here may rewrite its report."""
    out = tmp_path_factory.mktemp("report_out") / "out"
    shutil.copytree(junk_curated[0], out)
    return out


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
        )
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium per test module (closed after it, so the rest of the suite
    does not carry it), its console log kept (goog:loggingPrefs)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _find("chromium", "chromium-browser"), _find("chromedriver")
    if not (binary and driver_path):
        pytest.skip(
            "headless Chromium not found and not installed: `make test` installs it as root "
            "(apt-get install chromium chromium-driver)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1600",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


class Dom:
    """The page in the browser, from the test's side: run a script, or wait for one to be true."""

    def __init__(self, browser) -> None:
        self.browser = browser

    def js(self, script: str, *args):
        return self.browser.execute_script(script, *args)

    def wait(self, script: str, *args, timeout: float = 20):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.browser, timeout).until(lambda d: d.execute_script(script, *args))


@pytest.fixture(scope="module")
def dom(browser) -> Dom:
    return Dom(browser)


@pytest.fixture(scope="module")
def open_page(browser) -> Callable[[str], list[dict]]:
    """`open_page(url)`: load the page, wait for the script to have run; returns the console
    entries logged at SEVERE (errors) while loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    def load(url: str) -> list[dict]:
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(url)
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return document.getElementById('filter-count').textContent")
        )
        return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

    return load
