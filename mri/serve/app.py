"""The web page's server: a FastAPI app over a loaded Recommender.

    GET  /                       the page (page.html)
    GET  /health                 whether the models are loaded
    GET  /api/info               k, upload limits, example names
    POST /api/recommend          form fields "photo" (and "text": the user's words) -> PhotoResult as JSON, or
                                 {"error": plain words, "reason"}
    GET  /api/examples/{name}    an example photo (JPEG)
    GET  /api/mel/{song_id}.png  the song's mel-spectrogram picture
    GET  /docs, /openapi.json    the API's description (OpenAPI 3.1; /docs loads Swagger UI from a CDN)

Every refusal is JSON with one plain sentence: {"error", "reason"} for uploads, {"detail"} otherwise.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from functools import lru_cache
from http import HTTPStatus
from importlib import resources

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mri.data.images import BadImage
from mri.data.melon import BadMel, load_mel, mel_path
from mri.recommend.bridge import TextRefused, text_keywords
from mri.recommend.pipeline import PhotoResult, Recommender
from mri.serve.batching import Batcher, BatchSettings, Busy
from mri.serve.mel_picture import mel_picture, png_bytes
from mri.serve.schemas import Health, Info, Problem, Refusal
from mri.serve.threads import on_torch_threads, split_cores
from mri.serve.uploads import FIELD, UploadLimits, UploadRefused, receive_photo, refusal

log = logging.getLogger(__name__)
PHOTO_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD], "properties": {FIELD: {"type": "string", "format": "binary"}}}}}}}
REFUSALS = {status: {"model": Refusal} for status in (400, 411, 413, 415, 422, 503)}
NOT_FOUND = {404: {"model": Problem}}


class SongIdConvertor(Convertor[int]):
    """A song id in a path: a non-negative integer as written canonically (no sign, separator or leading zero)."""

    regex = "0|[1-9][0-9]{0,17}"  # below 2**63

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("song_id", SongIdConvertor())


DEFAULT_LIMITS = UploadLimits()  # frozen: one shared instance is safe as make_app's default


def make_app(recommender: Recommender, k: int = 10, limits: UploadLimits = DEFAULT_LIMITS,
             examples: dict[str, bytes] | None = None, batching: BatchSettings | None = None) -> FastAPI:
    """The app; examples: name -> JPEG bytes of the photos one click away; batching: of photos across requests."""
    app = FastAPI(title="MRI: music recommendation by image", summary="A photo in, its caption, tags and songs out.",
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.recommender = recommender
    page = resources.files("mri.serve").joinpath("page.html").read_text(encoding="utf-8")
    examples, batching = examples or {}, batching or BatchSettings()
    workers, threads = split_cores(batching.workers)
    batcher = app.state.batcher = Batcher(on_torch_threads(recommender.describe, threads),
                                          replace(batching, workers=workers))  # the image models' only caller

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

    @app.exception_handler(StarletteHTTPException)
    async def plain_http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail
        if err.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:  # no route matched
            detail = f"There is nothing at {request.url.path}: the API is described at /docs."
        elif err.status_code == 405:
            detail = f"{request.url.path} does not take {request.method}: the API is described at /docs."
        return JSONResponse({"detail": detail}, status_code=err.status_code, headers=err.headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def show_page() -> str:
        return page

    @app.get("/health")
    def health() -> Health:
        """Whether the models are loaded and photos are answered."""
        loaded = len(recommender.index) > 0  # the Recommender holds its models loaded; the index opened
        return Health(status="ok" if loaded else "no songs", models_loaded=loaded,
                      image_models=[model.key for model in recommender.stage.models], songs=len(recommender.index),
                      rerank=recommender.reranker is not None)

    @app.get("/api/info")
    def info() -> Info:
        """Songs per answer, the upload limits and the example photos' names."""
        return Info(k=k, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, examples=list(examples))

    @app.post("/api/recommend", response_model=PhotoResult, responses=REFUSALS, openapi_extra=PHOTO_FORM)
    async def recommend(request: Request) -> JSONResponse:
        """A photo (JPEG, PNG or WebP, form field "photo") -> its caption, the tags it leads to and the top-k songs."""
        try:
            result = await answer(*await receive_photo(request, limits))
        except UploadRefused as err:
            return JSONResponse({"error": err.message, "reason": err.reason}, status_code=err.status,
                                headers=err.headers)
        except Busy:
            return JSONResponse({"error": "The server is busy with other photos: send yours again in a moment.",
                                 "reason": "busy"}, status_code=503,
                                headers={"Retry-After": str(batching.retry_after_s)})
        except ClientDisconnect:  # nobody to answer: one line, no traceback
            log.info("%s: the upload stopped before its end (the client hung up, or was too slow)", _client(request))
            return Response(status_code=400)
        return JSONResponse(result.to_dict())

    @app.get("/api/examples/{name}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}},
                                                                         **NOT_FOUND})
    def example(name: str) -> Response:
        """An example photo (JPEG), one of /api/info's examples."""
        if name not in examples:
            raise HTTPException(404, f"There is no example photo {name!r}; the examples are {', '.join(examples)}.")
        return Response(examples[name], media_type="image/jpeg")

    @app.get("/api/mel/{song_id:song_id}.png", response_class=Response,
             responses={200: {"content": {"image/png": {}}}, **NOT_FOUND})
    def mel(song_id: int) -> Response:
        """The song's mel-spectrogram as a small picture (PNG); song_id as written in a PhotoResult's songs."""
        return Response(mel_png(song_id), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @lru_cache(maxsize=1024)  # about 20 kB each
    def mel_png(song_id: int) -> bytes:
        try:
            return png_bytes(mel_picture(load_mel(mel_path(recommender.catalogue.root, song_id)).data))
        except BadMel as err:
            raise HTTPException(404, f"There is no mel-spectrogram picture for song {song_id}: {err.reason}.") from None

    return app


def _client(request: Request) -> str:
    return "{}:{}".format(*request.client) if request.client else "a client"
