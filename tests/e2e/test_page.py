"""The browser page at ``/``: its two endpoints through Flask's test client, then the page itself in headless
Chromium against a real server.

The browser tests need Python Playwright (requirements-dev.txt) and Debian's Chromium at /usr/bin/chromium;
without them they skip with the reason. CI installs both (.ci/run). Playwright's own browser download is never
used: it launches the system Chromium.
"""

from __future__ import annotations

import csv
import io
import json
import types
import urllib.request
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import cv2
import numpy as np
import pytest

from checks import error_of
from conftest import REPO, SAMPLES
from faceanalysis.service.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = REPO / "artifacts" / "page_seqA.png"
SEQ_A_FRAMES = len(list((SAMPLES / "seqA").glob("*.jpg")))
# The page's colour for each person id (page.js PERSON_COLORS), as RGB.
PERSON_RGB = {1: (0x00, 0x9e, 0x73), 2: (0xe6, 0x9f, 0x00)}


# --- the endpoints, no models needed ----------------------------------------------------------------------------

@pytest.fixture()
def web(samples_dir):
    # The page and its endpoints never touch the analyzer, so a stand-in keeps these tests instant.
    return create_app(types.SimpleNamespace(ready=False), samples_dir).test_client()


def test_root_serves_the_page_and_its_files(web):
    page = web.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'src="static/page.js"' in html and 'href="static/page.css"' in html
    for name, mimetype in (("page.js", "text/javascript"), ("page.css", "text/css")):
        response = web.get(f"/static/{name}")
        assert response.status_code == 200 and response.mimetype == mimetype
        response.close()


def test_samples_lists_only_the_folders_a_request_may_name(web, samples_dir, tmp_path):
    (samples_dir / "seq10").mkdir()
    (samples_dir / "seq9").mkdir()
    (samples_dir / ".hidden").mkdir()
    (samples_dir / "notes.txt").write_text("not a sequence")
    (tmp_path / "elsewhere").mkdir()
    (samples_dir / "link").symlink_to(tmp_path / "elsewhere")
    assert web.get("/api/v2/samples").get_json() == {"samples": ["seq9", "seq10", "seqA"]}


def test_samples_of_the_repository():
    client = create_app(types.SimpleNamespace(ready=False), SAMPLES).test_client()
    assert {"seqA", "seqB"} <= set(client.get("/api/v2/samples").get_json()["samples"])


def test_thumbnail_is_a_small_jpeg_with_the_frame_size(web):
    response = web.get("/api/v2/samples/seqA/frames/0.jpg?width=160")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)
    assert (response.headers["X-Frame-Width"], response.headers["X-Frame-Height"]) == ("640", "480")
    default = cv2.imdecode(np.frombuffer(web.get("/api/v2/samples/test/frames/3.jpg").data, np.uint8), 1)
    assert default.shape[1] == 160
    # Never enlarged past the frame itself.
    large = cv2.imdecode(np.frombuffer(web.get("/api/v2/samples/seqA/frames/1.jpg?width=640").data, np.uint8), 1)
    assert large.shape[:2] == (480, 640)


def test_thumbnail_errors(web, samples_dir):
    (samples_dir / "seqA" / "zzz_broken.jpg").write_bytes(b"not a jpeg")   # the 5th frame in natural order
    error_of(web.get("/api/v2/samples/seqA/frames/5.jpg"), 404, "frame_not_found")
    error_of(web.get("/api/v2/samples/seqA/frames/4.jpg"), 422, "unreadable_frame")
    error_of(web.get("/api/v2/samples/nope/frames/0.jpg"), 404, "sequence_not_found")
    error_of(web.get("/api/v2/samples/%2e%2e/frames/0.jpg"), 400, "invalid_sequence_name")
    error_of(web.get("/api/v2/samples/.hidden/frames/0.jpg"), 400, "invalid_sequence_name")
    for width in ("5", "641", "wide", ""):
        error_of(web.get(f"/api/v2/samples/seqA/frames/0.jpg?width={width}"), 400, "invalid_option")
    error_of(web.get("/api/v2/samples/seqA/frames/-1.jpg"), 404, "not_found")


# --- the page in a real browser ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Python Playwright is not installed (bash scripts/setup.sh test)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, server):  # noqa: F811  (server is the imported fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # Chromium logs every 4xx/5xx response as a console error; those the page expects (an API error it shows)
    # are checked by the tests themselves, so only script errors count here.
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.goto(f"{server}/")
    yield page
    context.close()
    assert not problems, problems


def fixed(value: float, places: int) -> str:
    """``value.toFixed(places)`` as JavaScript writes it: the exact double, ties rounded up."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def analyze(server_url: str, body: dict) -> dict:
    request = urllib.request.Request(f"{server_url}/api/v2/analyze", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def without_timings(answer: dict) -> dict:
    return {**answer, "meta": {key: value for key, value in answer["meta"].items() if key != "timings_ms"}}


def download(page, name: str) -> str:
    """The text of the file the download link ``name`` saves."""
    with page.expect_download() as started:
        page.get_by_role("link", name=name).click()
    return Path(started.value.path()).read_text(encoding="utf-8")


def overlay_state(page) -> dict:
    """What the player's canvas shows: the frame number and the boxes drawn, as page.js records them."""
    return page.evaluate("""() => {
        const canvas = document.getElementById('overlay');
        return {frame: Number(canvas.dataset.frame), boxes: JSON.parse(canvas.dataset.boxes || '[]')};
    }""")


def box_edge_colour(page, box) -> list[int]:
    """The overlay canvas's pixel on the left edge of ``box``, halfway down (the box's line is 2 or 4 px wide)."""
    x1, y1, x2, y2 = box
    return page.evaluate("""([x, y]) => Array.from(document.getElementById('overlay').getContext('2d')
        .getImageData(x, y, 1, 1).data.slice(0, 3))""", [round(x1), round((y1 + y2) / 2)])


def near(colour, expected, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def test_page_runs_a_sample_and_shows_the_api_answer(page, server):  # noqa: F811
    page.get_by_label("Sample", exact=True).select_option("seqA")
    page.get_by_role("button", name="Analyse").click()
    # Shown from the click until the job is done, which takes seconds even for 30 frames.
    assert page.get_by_label("Progress").is_visible()
    # Attached, not visible: a series that stays at 0 (angry, for a smiling face) is a flat line of no height.
    page.locator("#chart path[data-expression]").first.wait_for(state="attached", timeout=240_000)
    assert page.locator("#progress-row").is_hidden()
    assert page.locator("#error").is_hidden()

    answer = analyze(server, {"sample": "seqA", "timeline": True})
    person = next(candidate for candidate in answer["persons"] if candidate["primary"])
    text = lambda selector: page.locator(selector).inner_text().strip()   # noqa: E731
    assert text("#age") == fixed(person["age"]["value"], 1)
    low, high = person["age"]["interval"]
    assert text("#age-interval") == f"{fixed(low, 0)}–{fixed(high, 0)}"
    assert text("#male") == f"{fixed(person['gender']['male'] * 100, 1)}%"
    assert text("#female") == f"{fixed(person['gender']['female'] * 100, 1)}%"
    dominant = person["expression"]["dominant"]
    assert text("#dominant") == dominant
    assert text("#dominant-probability") == f"{fixed(person['expression'][dominant] * 100, 1)}%"

    # One line per expression, a point for every frame where the main person's face was found.
    with_face = sum(any(face["person"] == person["id"] for face in frame["faces"]) for frame in answer["timeline"])
    series = page.locator("#chart path[data-expression]")
    assert series.count() == 7
    assert {int(series.nth(i).get_attribute("data-points")) for i in range(7)} == {with_face}
    assert with_face == SEQ_A_FRAMES

    # Every frame has its thumbnail, with the main person's box drawn on it.
    page.wait_for_function("n => document.querySelectorAll('#strip canvas[data-drawn]').length === n",
                           arg=SEQ_A_FRAMES, timeout=60_000)
    canvases = page.locator("#strip canvas")
    assert canvases.count() == SEQ_A_FRAMES
    assert page.locator("#strip canvas[data-drawn=true]").count() == SEQ_A_FRAMES
    assert all(int(canvases.nth(i).get_attribute("data-faces")) >= 1 for i in range(SEQ_A_FRAMES))
    # The box's left edge, halfway down, is green on the canvas (not just in a data attribute).
    green = page.evaluate("""() => Array.from(document.querySelectorAll('#strip canvas'), canvas => {
        const [x1, y1, x2, y2] = canvas.dataset.box.split(',').map(Number);
        const pixels = canvas.getContext('2d').getImageData(Math.round(x1) - 1, Math.round((y1 + y2) / 2), 3, 1).data;
        for (let i = 0; i < pixels.length; i += 4)
          if (pixels[i + 1] > 150 && pixels[i] < 120 && pixels[i + 2] < 140) return true;
        return false;
    })""")
    assert all(green), green

    # The player shows the sample frame by frame (a sample is not a video), person 1's box drawn in its colour.
    page.wait_for_function("() => document.getElementById('stage').dataset.mode === 'frames'")
    assert page.locator("#video").is_hidden() and page.get_by_role("button", name="Play").is_visible()
    page.wait_for_function("() => document.getElementById('overlay').dataset.frame === '0'")
    shown = overlay_state(page)
    assert [box["person"] for box in shown["boxes"]] == [person["id"]]
    assert near(box_edge_colour(page, shown["boxes"][0]["box"]), PERSON_RGB[1])
    assert page.locator("#frame-label").inner_text().startswith("frame 0 · 0.00 s")
    # Play steps through the analysed frames, each with its box.
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => Number(document.getElementById('overlay').dataset.frame) >= 3", timeout=30_000)
    page.get_by_role("button", name="Pause").click()
    assert [box["person"] for box in overlay_state(page)["boxes"]] == [person["id"]]
    assert page.locator("#truncated").is_hidden()

    # The downloads are the job's answer: the JSON as the API gives it, the CSVs its persons and faces.
    downloaded = json.loads(download(page, "answer (JSON)"))
    assert downloaded["meta"]["options"] == {"timeline": True, "max_frames": 3000, "stride": 1, "fps": 25.0,
                                             "keep_upload": False}
    assert without_timings(downloaded) == without_timings(answer)
    persons = list(csv.DictReader(io.StringIO(download(page, "persons (CSV)"))))
    assert len(persons) == len(answer["persons"])
    row = next(row for row in persons if row["primary"] == "true")
    assert float(row["age"]) == person["age"]["value"] and float(row["female"]) == person["gender"]["female"]
    assert row["spans"] == " ".join(f"{a}-{b}" for a, b in person["spans"])
    faces = list(csv.DictReader(io.StringIO(download(page, "faces per frame (CSV)"))))
    assert len(faces) == sum(len(frame["faces"]) for frame in answer["timeline"])
    assert [float(faces[0][key]) for key in ("x1", "y1", "x2", "y2")] == answer["timeline"][0]["faces"][0]["box"]

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_page_warns_when_max_frames_cut_the_input(page, server):  # noqa: F811
    page.get_by_label("Sample", exact=True).select_option("seqA")
    page.get_by_label("Every n-th frame").fill("2")
    page.get_by_label("At most this many frames").fill("4")
    page.get_by_role("button", name="Analyse").click()
    warning = page.locator("#truncated")
    warning.wait_for(timeout=240_000)
    assert "only the first 4 frames" in warning.inner_text() and "max_frames=4, stride=2" in warning.inner_text()
    # Frames 0, 2, 4, 6 were analysed: the slider has 4 positions, the last showing frame 6.
    assert page.locator("#position").get_attribute("max") == "3"
    page.locator("#position").fill("3")
    page.wait_for_function("() => document.getElementById('overlay').dataset.frame === '6'")


def test_page_shows_an_api_error(page):
    page.get_by_label("A video or a zip of frames").check()
    page.get_by_label("File").set_input_files(
        files=[{"name": "frames.zip", "mimeType": "application/zip", "buffer": b"this is not a zip"}])
    page.get_by_role("button", name="Analyse").click()
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=30_000)
    assert "invalid_archive" in alert.inner_text() and "HTTP 422" in alert.inner_text()
    assert "not a readable zip archive" in alert.inner_text()
    assert page.locator("#results").is_hidden()


def test_page_plays_a_video_with_each_persons_box_and_a_row_click_seeks(page, server, tmp_path):  # noqa: F811
    # Two people: the astronaut for 20 frames, then Grace Hopper for 12 (a hard cut), as a WebM (VP8) upload,
    # which Chromium plays in its <video> element.
    from training.tracking_data import FPS, sample_frames
    frames = sample_frames("seqA")[:20] + sample_frames("seqB")[:12]
    video = tmp_path / "two.webm"
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"VP80"), FPS, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    page.get_by_label("A video or a zip of frames").check()
    page.get_by_label("File").set_input_files(str(video))
    page.get_by_role("button", name="Analyse").click()
    rows = page.locator("#persons tbody tr")
    rows.nth(1).wait_for(timeout=240_000)
    assert rows.count() == 2
    first, second = (rows.nth(i) for i in range(2))
    assert "Person 1 (main)" in first.inner_text() and "20 frames" in first.inner_text()
    assert "Person 2" in second.inner_text() and "12 frames" in second.inner_text()
    # Each row's picture, and its spans on the frame axis: frames 0-19 and 20-31.
    assert first.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
    assert first.locator("svg.spans").get_attribute("aria-label") == "seen in frames 0–19"
    assert second.locator("svg.spans").get_attribute("aria-label") == "seen in frames 20–31"
    assert page.locator("#person-id").inner_text().startswith("1")
    assert int(page.locator("#chart path[data-expression]").first.get_attribute("data-points")) == 20

    # The upload plays in the <video>; on its first frame, person 1's box in person 1's colour.
    page.wait_for_function("() => document.getElementById('stage').dataset.mode === 'video'", timeout=30_000)
    assert page.locator("#video").is_visible() and page.locator("#frame-controls").is_hidden()
    assert page.evaluate("() => document.getElementById('video').duration") == pytest.approx(32 / FPS, abs=0.1)
    page.wait_for_function("() => document.getElementById('overlay').dataset.frame === '0'")
    shown = overlay_state(page)
    assert [box["person"] for box in shown["boxes"]] == [1]
    assert near(box_edge_colour(page, shown["boxes"][0]["box"]), PERSON_RGB[1])

    # A click anywhere on the row (here its "seen in" cell, not its button) chooses the person and seeks the
    # video to their first frame, where their box is drawn.
    second.locator("td").last.click()
    assert page.locator("#person-id").inner_text() == "2"
    assert second.get_by_role("button").get_attribute("aria-pressed") == "true"
    assert int(page.locator("#chart path[data-expression]").first.get_attribute("data-points")) == 12
    assert float(page.locator("#age").inner_text()) > 55         # Grace Hopper
    page.wait_for_function("() => document.getElementById('overlay').dataset.frame === '20'", timeout=30_000)
    assert page.evaluate("() => document.getElementById('video').currentTime") == pytest.approx(20.5 / FPS, abs=0.01)
    shown = overlay_state(page)
    assert [box["person"] for box in shown["boxes"]] == [2]
    assert near(box_edge_colour(page, shown["boxes"][0]["box"]), PERSON_RGB[2])
    assert "frame 20" in page.locator("#frame-label").inner_text()
    # Playing on draws each frame's box: past the cut, still person 2.
    page.evaluate("() => document.getElementById('video').play()")
    page.wait_for_function("() => Number(document.getElementById('overlay').dataset.frame) >= 24", timeout=30_000)
    assert [box["person"] for box in overlay_state(page)["boxes"]] == [2]
    page.evaluate("() => document.getElementById('video').pause()")
    faces = list(csv.DictReader(io.StringIO(download(page, "faces per frame (CSV)"))))
    assert [int(row["person"]) for row in faces] == [1] * 20 + [2] * 12
    assert [float(row["seconds"]) for row in faces[:2]] == [0.0, round(1 / FPS, 6)]   # the answer's time
    page.screenshot(path=str(SCREENSHOT.with_name("page_two_persons.png")), full_page=True)


def test_page_cancels_a_job(page, server):  # noqa: F811
    # seqA 100 times over in a zip: long enough to be cancelled while it runs.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as writer:
        for repeat in range(10):
            for path in sorted((SAMPLES / "seqA").glob("*.jpg")):
                writer.write(path, f"{repeat:02d}_{path.name}")
    page.get_by_label("A video or a zip of frames").check()
    page.get_by_label("File").set_input_files(
        files=[{"name": "long.zip", "mimeType": "application/zip", "buffer": archive.getvalue()}])
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_function("() => /of 300 frames/.test(document.getElementById('progress-text').textContent)",
                           timeout=240_000)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Cancelled')",
                           timeout=60_000)
    assert page.locator("#error").is_hidden() and page.locator("#results").is_hidden()
    assert page.get_by_role("button", name="Analyse").is_enabled()


def test_page_shows_a_video_it_cannot_play_frame_by_frame(page, server, tmp_path):  # noqa: F811
    # An .avi (Motion JPEG): Chromium cannot play it, so the page shows the analysed frames from the job's kept
    # upload, with the boxes, and a slider to move through them.
    from training.tracking_data import ComposedVideo, sample_frames
    frames = sample_frames("seqA")[:8]
    video = ComposedVideo("one", "A", frames, [("A",)] * 8).write(tmp_path / "one.avi")
    page.get_by_label("A video or a zip of frames").check()
    page.get_by_label("File").set_input_files(str(video))
    page.get_by_role("button", name="Analyse").click()
    page.locator("#persons tbody tr").first.wait_for(timeout=240_000)
    page.wait_for_function("() => document.getElementById('stage').dataset.mode === 'frames'", timeout=30_000)
    assert "cannot play this video format" in page.locator("#player-note").inner_text()
    page.wait_for_function("() => document.getElementById('overlay').dataset.frame === '0'", timeout=30_000)
    shown = overlay_state(page)
    assert [box["person"] for box in shown["boxes"]] == [1]
    assert near(box_edge_colour(page, shown["boxes"][0]["box"]), PERSON_RGB[1])
    page.locator("#position").fill("7")
    page.wait_for_function("() => document.getElementById('overlay').dataset.frame === '7'", timeout=30_000)
    assert [box["person"] for box in overlay_state(page)["boxes"]] == [1]
