"""The web page's server: a FastAPI app over a loaded Recommender.

    GET  /                       the page (page.html)
    GET  /api/info               k, upload limits, example names
    POST /api/recommend          form fields "photo" (and "text": the user's words) -> PhotoResult as JSON, or
                                 {"error": plain words, "reason"}
    GET  /api/examples/{name}    an example photo (JPEG)
    GET  /api/mel/{song_id}.png  the song's mel-spectrogram picture
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mri.data.images import BadImage
from mri.data.melon import BadMel, load_mel, mel_path
from mri.recommend.bridge import TextRefused, text_keywords
from mri.recommend.pipeline import PhotoResult, Recommender
from mri.serve.batching import Batcher, BatchSettings, Busy
from mri.serve.mel_picture import mel_picture, png_bytes
from mri.serve.uploads import UploadLimits, UploadRefused, receive_photo, refusal


def make_app(recommender: Recommender, k: int = 10, limits: UploadLimits = UploadLimits(),
             examples: dict[str, bytes] | None = None, batching: BatchSettings | None = None) -> FastAPI:
    """The app; examples: name -> JPEG bytes of the photos one click away; batching: of photos across requests."""
    app = FastAPI(title="MRI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.recommender = recommender
    page = resources.files("mri.serve").joinpath("page.html").read_text(encoding="utf-8")
    examples, batching = examples or {}, batching or BatchSettings()
    batcher = app.state.batcher = Batcher(recommender.describe, batching)  # the image models' only caller

    async def answer(photo: bytes, name: str, text: str) -> PhotoResult:
        """Read and preprocess in a worker thread, the image models in a batch, then bridge and songs."""
        try:
            text_keywords(text, ())  # a text over the limit is refused before the models run
        except TextRefused as err:
            raise UploadRefused("text_too_long", f"Your words are too long: {err}.", 422) from None
        try:
            prepared = await run_in_threadpool(recommender.prepare, photo)
        except BadImage as err:  # passed the header check, failed to decode
            raise refusal(err, limits) from None
        findings = await batcher.submit(prepared)
        return await run_in_threadpool(recommender.answer, name, findings, k, text)

    @app.get("/", response_class=HTMLResponse)
    def show_page() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict:
        return {"k": k, "max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels, "examples": list(examples)}

    @app.post("/api/recommend")
    async def recommend(request: Request) -> JSONResponse:
        try:
            result = await answer(*await receive_photo(request, limits))
        except UploadRefused as err:
            return JSONResponse({"error": err.message, "reason": err.reason}, status_code=err.status)
        except Busy:
            return JSONResponse({"error": "The server is busy with other photos: send yours again in a moment.",
                                 "reason": "busy"}, status_code=503,
                                headers={"Retry-After": str(batching.retry_after_s)})
        return JSONResponse(result.to_dict())

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
