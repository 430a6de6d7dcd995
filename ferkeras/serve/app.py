"""The ASGI application behind ``ferkeras serve`` (FastAPI on the TensorFlow-free edge runtime).

``create_app(EnginePool(model, size), ServeSettings())`` gives an app any ASGI
server runs; docs/serve.md is the API reference.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from ferkeras import __version__
from ferkeras.serve.engines import BadImage, EnginePool, decode_upload
from ferkeras.serve.guard import SUBPROTOCOL, BodyTooLarge, Guard, error_detail
from ferkeras.serve.settings import ServeSettings
from ferkeras.serve.stream import TRY_AGAIN_LATER, StreamSession

log = logging.getLogger(__name__)

PAGE = Path(str(resources.files("ferkeras.serve") / "page"))
MULTIPART_FIELD = "image"


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class Face(BaseModel):
    face_id: int | None  # a track id in streams; null for still images
    box: Box
    label: str  # a class name, or "uncertain" below the confidence threshold
    confidence: float
    probabilities: dict[str, float]


class ImageSize(BaseModel):
    width: int
    height: int


class FacesResponse(BaseModel):
    model: dict[str, str]
    image: ImageSize
    faces: list[Face]
    server_ms: float


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 413, 415)}

IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {MULTIPART_FIELD: {"type": "string", "format": "binary"}},
                    "required": [MULTIPART_FIELD],
                }
            },
        },
    }
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error_detail(status, code, message)}, status_code=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_image",
}


async def _image_bytes(request: Request, max_bytes: int) -> bytes:
    """The uploaded image: the raw body, or the ``image`` part of a multipart form."""
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=max_bytes)
        except BodyTooLarge:
            raise
        except Exception as exc:  # the form parser's own errors (bad boundary, too many parts)
            raise BadImage(400, "bad_form", f"cannot read the multipart form: {exc}") from None
        upload = form.get(MULTIPART_FIELD)
        if upload is None or isinstance(upload, str):
            raise BadImage(400, "bad_form", f"the multipart form needs a file field named {MULTIPART_FIELD!r}")
        return await upload.read()
    return await request.body()


def create_app(pool: EnginePool, settings: ServeSettings) -> Guard:
    """The service: API routes, the browser page and the stream, behind :class:`Guard`."""
    app = FastAPI(
        title="ferkeras",
        version=__version__,
        description="Facial emotion recognition: faces, their boxes and emotion probabilities, per image or per video stream.",
        docs_url=None,
        redoc_url=None,
    )
    if settings.cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "query")
        return _error(400, "bad_parameter", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(BadImage)
    async def bad_image(_request, exc: BadImage):
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request, exc: BodyTooLarge):
        return _error(413, "too_large", str(exc))

    @app.get("/v1/health", summary="Is the service up")
    async def health():
        return {
            "status": "ok",
            "uptime_s": round(time.time() - pool.started, 1),
            "engines": pool.size,
            "busy": pool.busy,
            "model": pool.model_info,
        }

    @app.get("/v1/model", summary="The model card's essentials")
    async def model():
        return pool.card_summary()

    @app.post(
        "/v1/faces",
        summary="Faces and emotions in one image",
        response_model=FacesResponse,
        responses=ERRORS,
        openapi_extra=IMAGE_BODY,
    )
    async def faces(request: Request, detect: bool = Query(True, description="false: the whole image is one face crop")):
        """Send a JPEG, PNG or WebP image as the raw body or as the ``image`` field of a multipart form."""
        start = time.perf_counter()
        raw = await _image_bytes(request, settings.max_bytes)

        def work(recognizer):
            image = decode_upload(raw, settings.max_pixels)
            found = recognizer.predict_image(image, detect=detect)
            return image.shape, [face.to_dict(pool.class_names) for face in found]

        shape, found = await pool.run(work)
        return {
            "model": {"name": pool.model_info["name"], "version": pool.model_info["version"]},
            "image": {"width": shape[1], "height": shape[0]},
            "faces": found,
            "server_ms": round(1000 * (time.perf_counter() - start), 2),
        }

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        if app.state.sessions >= settings.max_sessions:
            await websocket.close(code=TRY_AGAIN_LATER, reason=f"at most {settings.max_sessions} streams at a time")
            return
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        app.state.sessions += 1
        try:
            await StreamSession(websocket, pool, settings).run()
        finally:
            app.state.sessions -= 1

    app.state.sessions = 0

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ferkeras API",
            swagger_js_url="/swagger/swagger-ui-bundle.js",
            swagger_css_url="/swagger/swagger-ui.css",
            swagger_favicon_url="/page/favicon.svg",
        )

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE / "index.html")

    app.mount("/page", StaticFiles(directory=PAGE), name="page")
    try:
        from swagger_ui_bundle import swagger_ui_path  # offline /docs: the assets come with the [serve] extra

        app.mount("/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
    except ImportError:
        log.warning("swagger-ui-bundle is not installed: /docs will not render (pip install 'ferkeras[serve]')")
    return Guard(app, settings)
