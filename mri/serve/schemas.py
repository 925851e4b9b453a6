"""What the page's API answers besides a recommendation (mri.recommend.pipeline.PhotoResult itself):
pydantic models that make its OpenAPI schema (/openapi.json, /docs) say what every status carries.

The schema fuzz test (tests/test_serve_api.py) checks every answer against the schema.
"""
from __future__ import annotations

from pydantic import BaseModel, Field


class Refusal(BaseModel):
    """An upload the page cannot use."""

    error: str = Field(description="what was wrong and what to do, in one plain sentence")
    reason: str = Field(description="a short code: not_image, corrupt, empty, too_large, bad_form, no_photo, ...")


class Problem(BaseModel):
    """Any other request the API cannot answer."""

    detail: str = Field(description="what was wrong, in one plain sentence")


class Info(BaseModel):
    k: int = Field(description="songs per answer")
    max_bytes: int
    max_pixels: int
    examples: list[str] = Field(description="names of the example photos (GET /api/examples/{name})")


class Health(BaseModel):
    status: str = Field(description='"ok" when the models are loaded and the song index has songs')
    models_loaded: bool
    image_models: list[str] = Field(description='what the image models find for each photo, e.g. ["caption"]')
    songs: int = Field(description="songs in the song index")
    rerank: bool = Field(description="whether an early-fusion model reranks the index's candidates")
