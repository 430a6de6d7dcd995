"""ferkeras serve: every endpoint and every refusal, through the ASGI test client, with the shipped model."""

import json
import struct
import subprocess
import sys
import time
import zlib

import cv2
import pytest
from conftest import invoke

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from ferkeras.errors import FerKerasError  # noqa: E402
from ferkeras.labels import CLASS_NAMES  # noqa: E402
from ferkeras.serve.app import create_app  # noqa: E402
from ferkeras.serve.engines import EnginePool  # noqa: E402
from ferkeras.serve.settings import ServeSettings  # noqa: E402

TOKEN = "a-test-token-of-good-length"
WS_URL = "ws://127.0.0.1:8000/v1/stream"
LABELS = {*CLASS_NAMES, "uncertain"}


@pytest.fixture(scope="module")
def pool():
    return EnginePool(None, 2)  # the shipped default model, int8 TFLite


@pytest.fixture(scope="module")
def frames(sample_clip):
    """Clip frames: 0-19 show one face, 215-274 three or four."""
    capture = cv2.VideoCapture(str(sample_clip))
    found = {}
    for index in range(240):
        ok, frame = capture.read()
        assert ok
        found[index] = frame
    return found


def jpeg(frame, ext=".jpg") -> bytes:
    ok, data = cv2.imencode(ext, frame)
    assert ok
    return data.tobytes()


def client(pool, **settings) -> TestClient:
    return TestClient(create_app(pool, ServeSettings(**settings)), base_url="http://127.0.0.1:8000")


def error_of(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()["error"]
    assert body["status"] == status and body["code"] == code and body["message"]
    return body["message"]


def check_face(face):
    assert face["label"] in LABELS
    assert set(face["probabilities"]) == set(CLASS_NAMES)
    assert abs(sum(face["probabilities"].values()) - 1) < 0.01
    assert all(face["box"][k] >= 0 for k in "xy") and face["box"]["w"] > 10 and face["box"]["h"] > 10


def test_health_model_and_docs(pool):
    with client(pool) as http:
        health = http.get("/v1/health").json()
        assert health["status"] == "ok" and health["engines"] == 2 and health["busy"] == 0
        card = http.get("/v1/model").json()
        assert card["class_names"] == list(CLASS_NAMES) and card["format"] == "tflite"
        assert len(card["version"]) == 12 and card["version"] == health["model"]["version"]
        assert card["metrics"]["fer2013_val"]["accuracy"] > 0.6
        schema = http.get("/openapi.json").json()
        assert {"/v1/faces", "/v1/health", "/v1/model"} <= set(schema["paths"])
        assert "multipart/form-data" in schema["paths"]["/v1/faces"]["post"]["requestBody"]["content"]
        docs = http.get("/docs")
        assert docs.status_code == 200 and "/swagger/swagger-ui-bundle.js" in docs.text
        assert http.get("/swagger/swagger-ui-bundle.js").status_code == 200  # offline: no CDN
        page = http.get("/")
        assert page.status_code == 200 and "/page/app.js" in page.text
        assert http.get("/page/app.js").status_code == 200


def test_faces_in_every_format_and_both_body_kinds(pool, frames):
    with client(pool) as http:
        results = {}
        for ext in (".jpg", ".png", ".webp"):
            response = http.post("/v1/faces", content=jpeg(frames[5], ext), headers={"content-type": "application/octet-stream"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["image"] == {"width": 640, "height": 360}
            assert body["model"]["name"] and body["server_ms"] > 0
            assert len(body["faces"]) == 1
            check_face(body["faces"][0])
            assert body["faces"][0]["face_id"] is None  # still images are not tracked
            results[ext] = body["faces"][0]
        # PNG and WebP (lossless at 100) are the same pixels as the frame: same answer
        assert (
            results[".png"]["box"] == results[".webp"]["box"]
            or abs(results[".png"]["box"]["x"] - results[".webp"]["box"]["x"]) <= 2
        )
        form = http.post("/v1/faces", files={"image": ("f.jpg", jpeg(frames[5]), "image/jpeg")}).json()
        raw = http.post("/v1/faces", content=jpeg(frames[5])).json()
        assert form["faces"] == raw["faces"]
        crowd = http.post("/v1/faces", content=jpeg(frames[230])).json()
        assert len(crowd["faces"]) >= 3
        whole = http.post("/v1/faces?detect=false", content=jpeg(frames[5])).json()
        assert len(whole["faces"]) == 1 and whole["faces"][0]["box"] == {"x": 0, "y": 0, "w": 640, "h": 360}
        # the Content-Type is not trusted: a JPEG labelled PNG is read as the JPEG it is
        lying = http.post("/v1/faces", content=jpeg(frames[5]), headers={"content-type": "image/png"})
        assert lying.status_code == 200 and lying.json()["faces"] == raw["faces"]


def png_header_only(width, height) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def test_every_bad_input_gets_a_json_4xx(pool, frames):
    with client(pool, max_bytes=200_000, max_pixels=1000 * 1000) as http:
        error_of(http.post("/v1/faces", content=b""), 400, "empty_body")
        error_of(http.post("/v1/faces", content=b"hello, not an image"), 415, "unsupported_image")
        error_of(http.post("/v1/faces", content=b"GIF89a" + bytes(100)), 415, "unsupported_image")
        whole = jpeg(frames[5])
        error_of(http.post("/v1/faces", content=whole[: len(whole) // 2]), 400, "bad_image")
        message = error_of(http.post("/v1/faces", content=png_header_only(50_000, 50_000)), 413, "too_many_pixels")
        assert "2,500,000,000" in message
        big = bytes(300_000)
        error_of(http.post("/v1/faces", content=big), 413, "too_large")
        chunked = http.post("/v1/faces", content=(big[i : i + 65536] for i in range(0, len(big), 65536)))  # no Content-Length
        error_of(chunked, 413, "too_large")
        error_of(http.post("/v1/faces", files={"photo": ("f.jpg", whole, "image/jpeg")}), 400, "bad_form")
        error_of(http.post("/v1/faces", files={"image": (None, "text, not a file")}), 400, "bad_form")
        error_of(http.post("/v1/faces?detect=maybe", content=whole), 400, "bad_parameter")
        error_of(http.get("/v1/nothing"), 404, "not_found")
        error_of(http.get("/v1/faces"), 405, "method_not_allowed")
        error_of(http.get("/v1/health", headers={"host": "attacker.example"}), 421, "wrong_host")


def test_token_on_every_request(pool):
    with client(pool, token=TOKEN) as http:
        for path in ("/v1/health", "/v1/model", "/", "/docs", "/openapi.json", "/page/app.js"):
            error_of(http.get(path), 401, "unauthorized")
        error_of(http.post("/v1/faces", content=b"x"), 401, "unauthorized")
        error_of(http.get("/v1/health", headers={"authorization": "Bearer wrong-token-of-good-length"}), 401, "unauthorized")
        assert http.get("/v1/health", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        error_of(http.get("/?token=wrong"), 401, "unauthorized")
        login = http.get(f"/?token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert http.get("/v1/health").status_code == 200  # the client kept the cookie
    with client(pool, token=TOKEN) as http:
        with pytest.raises(WebSocketDisconnect):
            with http.websocket_connect(WS_URL) as ws:
                ws.receive_text()
        with http.websocket_connect(WS_URL, subprotocols=["ferkeras.v1", f"bearer.{TOKEN}"]) as ws:
            ws.send_text('{"type": "reset"}')
            assert json.loads(ws.receive_text()) == {"type": "reset"}
        with http.websocket_connect(WS_URL, headers={"authorization": f"Bearer {TOKEN}"}) as ws:
            ws.send_text('{"type": "reset"}')
            assert json.loads(ws.receive_text())["type"] == "reset"


def test_settings_refuse_an_open_bind_without_a_token(monkeypatch):
    monkeypatch.delenv("FERKERAS_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.20", "::", "kiosk.local"):
        with pytest.raises(FerKerasError, match="--token"):
            ServeSettings(host=host)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert ServeSettings(host=host).token is None
    assert ServeSettings(host="0.0.0.0", token=TOKEN).token == TOKEN
    with pytest.raises(FerKerasError, match="at least 16"):
        ServeSettings(host="0.0.0.0", token="short")
    monkeypatch.setenv("FERKERAS_TOKEN", TOKEN)
    assert ServeSettings(host="0.0.0.0").token == TOKEN
    monkeypatch.delenv("FERKERAS_TOKEN")
    result = invoke("serve", "--host", "0.0.0.0", "--model", "fer2013_resnet18_cbam")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "--host 0.0.0.0 accepts connections from other machines" in result.output
    result = invoke("serve", "--cors", "evil.example")
    assert result.exit_code == 1 and "--cors takes origins" in result.output


def test_cors_is_off_unless_asked(pool):
    origin = {"origin": "https://kiosk.example"}
    with client(pool) as http:
        assert "access-control-allow-origin" not in http.get("/v1/health", headers=origin).headers
        with pytest.raises(WebSocketDisconnect):
            with http.websocket_connect(WS_URL, headers=origin) as ws:
                ws.receive_text()
        with http.websocket_connect(WS_URL, headers={"origin": "http://127.0.0.1:8000"}) as ws:  # its own page
            ws.send_text('{"type": "reset"}')
            ws.receive_text()
    with client(pool, cors=("https://kiosk.example",)) as http:
        assert http.get("/v1/health", headers=origin).headers["access-control-allow-origin"] == "https://kiosk.example"
        with http.websocket_connect(WS_URL, headers=origin) as ws:
            ws.send_text('{"type": "reset"}')
            ws.receive_text()


def answers_until(ws, last_frame):
    answers = []
    while True:
        answer = json.loads(ws.receive_text())
        answers.append(answer)
        if answer.get("frame") == last_frame:
            return answers


def test_stream_tracks_and_smooths(pool, frames):
    with client(pool) as http, http.websocket_connect(WS_URL) as ws:
        answers = []
        for index in range(12):  # one at a time: nothing is skipped
            ws.send_bytes(jpeg(frames[index]))
            answers += answers_until(ws, index)
        assert [a["frame"] for a in answers] == list(range(12))
        assert all(a["type"] == "faces" and a["skipped"] == [] for a in answers)
        ids = {face["face_id"] for a in answers for face in a["faces"]}
        assert len(ids) == 1 and None not in ids  # one face, one track
        first, later = answers[0]["faces"][0], answers[-1]["faces"][0]
        check_face(later)
        assert first["probabilities"] != later["probabilities"]
        ws.send_text('{"type": "reset"}')
        assert json.loads(ws.receive_text()) == {"type": "reset"}
        ws.send_bytes(jpeg(frames[12]))
        after = answers_until(ws, 12)[-1]
        assert after["faces"][0]["face_id"] not in ids  # reset forgot the track


def test_stream_skips_stale_frames_and_accounts_for_each(pool, frames):
    with client(pool) as http, http.websocket_connect(WS_URL) as ws:
        data = [jpeg(frames[200 + i]) for i in range(25)]
        for item in data:  # as fast as possible: the server cannot keep up
            ws.send_bytes(item)
        answers = answers_until(ws, 24)
        answered = [a["frame"] for a in answers]
        skipped = [s["frame"] for a in answers for s in a["skipped"]]
        assert sorted(answered + skipped) == list(range(25))  # every frame answered or reported
        assert {s["reason"] for a in answers for s in a["skipped"]} == {"stale"}
        assert len(answered) < 25 and answered == sorted(answered)


def test_stream_rate_limit_bad_frames_and_session_limit(pool, frames):
    with client(pool, max_fps=3, max_sessions=1) as http:
        with http.websocket_connect(WS_URL) as ws:
            ws.send_bytes(b"not an image")
            refused = json.loads(ws.receive_text())
            assert refused["type"] == "error" and refused["frame"] == 0 and refused["error"]["status"] == 415
            ws.send_text("hello")
            assert json.loads(ws.receive_text())["error"]["code"] == "bad_message"
            for _ in range(10):  # frames 1-10, as fast as possible
                ws.send_bytes(jpeg(frames[3]))
            time.sleep(0.7)  # the bucket refills: frame 11 passes and reports what was skipped
            ws.send_bytes(jpeg(frames[3]))
            answers = answers_until(ws, 11)
        rate = [s for a in answers for s in a.get("skipped", []) if s["reason"] == "rate"]
        assert len(rate) >= 5  # 3 per second with a burst of 3
        with http.websocket_connect(WS_URL):
            with pytest.raises(WebSocketDisconnect) as refused:
                with http.websocket_connect(WS_URL) as second:
                    second.receive_text()
            assert refused.value.code == 1013


def test_serve_runs_without_tensorflow():
    code = (
        "import sys; from ferkeras.serve.app import create_app; from ferkeras.serve.engines import EnginePool; "
        "EnginePool(None, 1); assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bounded_load_through_a_real_server(tmp_path, sample_clip):
    from ferkeras.serve.loadtest import ServerProcess, clip_frames, rss_mb, run_load, table

    frames = clip_frames(sample_clip, step=25)
    with ServerProcess("--model", "fer2013_resnet18_cbam", "--max-fps", "60", log=tmp_path / "serve.log") as server:
        results = [run_load(server.url, mode, clients=4, seconds=2, frames=frames) for mode in ("http", "ws")]
        assert rss_mb(server.process.pid) > 20
    for result in results:
        assert result["errors"] == 0, result["error_kinds"]
        assert result["answered"] > 20 and result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert results[1]["skipped_frames"] == 0  # closed-loop clients under the rate limit lose no frame
    assert "| ws | 4 |" in table(results)
