"""The web page: drop a photo, see its caption, tags and songs (FastAPI app over the Recommender)."""
