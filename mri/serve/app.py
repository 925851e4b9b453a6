"""The web page's server: a FastAPI app over a loaded Recommender.

    GET  /                       the page (page.html)
    GET  /api/info               k, upload limits, example names
    POST /api/recommend          form field "photo" -> PhotoResult as JSON, or {"error": plain words, "reason"}
    GET  /api/examples/{name}    an example photo (JPEG)
    GET  /api/mel/{song_id}.png  the song's mel-spectrogram picture
"""
from __future__ import annotations

import tempfile
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mri.data.images import BadImage
from mri.data.melon import BadMel, load_mel, mel_path
from mri.recommend.pipeline import PhotoError, PhotoResult, Recommender
from mri.serve.mel_picture import mel_picture, png_bytes
from mri.serve.uploads import UploadLimits, UploadRefused, receive_photo, refusal


def make_app(recommender: Recommender, k: int = 10, limits: UploadLimits = UploadLimits(),
             examples: dict[str, bytes] | None = None) -> FastAPI:
    """The app; examples: name -> JPEG bytes of the photos one click away."""
    app = FastAPI(title="MRI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.recommender = recommender
    page = resources.files("mri.serve").joinpath("page.html").read_text(encoding="utf-8")
    examples = examples or {}
    models = threading.Lock()  # one photo through the models at a time

    def answer(path: Path) -> PhotoResult | PhotoError:
        with models:
            return next(recommender.recommend([path], k))

    @app.get("/", response_class=HTMLResponse)
    def show_page() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict:
        return {"k": k, "max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels, "examples": list(examples)}

    @app.post("/api/recommend")
    async def recommend(request: Request) -> JSONResponse:
        with tempfile.TemporaryDirectory(prefix="mri-upload-") as folder:  # removed with all it holds
            try:
                path, name = await receive_photo(request, Path(folder), limits)
                result = await run_in_threadpool(answer, path)
                if isinstance(result, PhotoError):  # passed the header check, failed to decode
                    raise refusal(BadImage(result.reason), limits)
            except UploadRefused as err:
                return JSONResponse({"error": err.message, "reason": err.reason}, status_code=err.status)
        return JSONResponse({**result.to_dict(), "path": name})

    @app.get("/api/examples/{name}")
    def example(name: str) -> Response:
        if name not in examples:
            raise HTTPException(404, f"no example photo {name!r}; the examples are {', '.join(examples)}")
        return Response(examples[name], media_type="image/jpeg")

    @app.get("/api/mel/{song_id}.png")
    def mel(song_id: int) -> Response:
        return Response(mel_png(song_id), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @lru_cache(maxsize=1024)  # about 20 kB each
    def mel_png(song_id: int) -> bytes:
        try:
            return png_bytes(mel_picture(load_mel(mel_path(recommender.catalogue.root, song_id)).data))
        except BadMel as err:
            raise HTTPException(404, f"no mel-spectrogram picture for song {song_id}: {err.reason}") from None

    return app
