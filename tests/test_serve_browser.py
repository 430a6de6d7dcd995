"""The camera page in a real browser: headless Chromium with a fake camera playing the bundled clip.

Skipped with a message where Chromium or Playwright is missing (.ci/run installs both).
"""

import cv2
import pytest
from browser import keep_screenshot, launch, not_blank, require_browser, write_y4m

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from ferkeras.serve.loadtest import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def camera_file(sample_clip, tmp_path_factory):
    """Frames 215-274 of the clip (three or four faces) as the fake camera's Y4M."""
    capture = cv2.VideoCapture(str(sample_clip))
    frames = []
    for index in range(275):
        ok, frame = capture.read()
        if ok and index >= 215:
            frames.append(frame)
    return write_y4m(frames, tmp_path_factory.mktemp("camera") / "clip.y4m")


def test_page_draws_labels_from_the_fake_camera_and_recovers_when_the_server_returns(camera_file, tmp_path):
    sync_api = require_browser()
    server = ServerProcess("--model", "fer2013_resnet18_cbam_small", log=tmp_path / "serve.log").start()
    url = server.url
    problems = []
    server_down = False

    def on_console(message):
        # While the service is stopped on purpose, each reconnect attempt is a refused connection that
        # Chromium logs as an error; a slow restart (a busy CPU) makes room for one or more of them.
        refused = server_down and "ERR_CONNECTION_REFUSED" in message.text
        if message.type == "error" and not refused:
            problems.append(message.text)

    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch(
                playwright,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera_file}",
            )
            page = browser.new_page(viewport={"width": 900, "height": 560})
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url + "/")
            page.wait_for_selector("#faces li[data-label]", timeout=45_000)
            page.wait_for_function("document.querySelectorAll('#faces li').length >= 2", timeout=20_000)
            assert page.get_attribute("body", "data-state") == "live"
            labels = page.eval_on_selector_all("#faces li", "items => items.map(i => i.dataset.label)")
            assert set(labels) <= {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain"}
            ids = page.eval_on_selector_all("#faces li", "items => items.map(i => i.dataset.faceId)")
            assert all(i.isdigit() for i in ids)
            page.wait_for_timeout(2000)  # a few seconds of streaming: a representative FPS on the screenshot
            assert page.inner_text("#fps") != "– FPS"
            assert page.eval_on_selector_all("#legend li", "items => items.map(i => i.textContent)")[:2] == ["angry", "disgust"]
            boxes_drawn = page.evaluate(
                "() => { const c = document.getElementById('overlay'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
            )
            assert boxes_drawn > 500  # boxes, labels and bars on the overlay
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot))
            assert not_blank(shot) > 10
            keep_screenshot(shot, "serve_page.png")

            server_down = True
            server.stop()  # the service goes away: the page says so and keeps trying
            page.wait_for_function("document.body.dataset.state === 'offline'", timeout=15_000)
            assert "Reconnecting" in page.inner_text("#message")
            server.start()
            page.wait_for_function("document.body.dataset.state === 'live'", timeout=30_000)
            server_down = False
            page.wait_for_selector("#faces li[data-label]", timeout=30_000)
            browser.close()
    finally:
        server.stop()
    assert not problems, problems


def test_page_explains_a_refused_camera(tmp_path):
    sync_api = require_browser()
    server = ServerProcess("--model", "fer2013_resnet18_cbam", log=tmp_path / "serve.log").start()
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright, "--use-fake-device-for-media-stream", "--deny-permission-prompts")
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_function("document.body.dataset.state === 'error'", timeout=20_000)
            assert "Camera access was refused" in page.inner_text("#message")
            browser.close()
    finally:
        server.stop()
