"""The page's API as an API: its OpenAPI schema, /docs and /health, and a fuzz test of every route from the schema."""
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mri.serve.background import BackgroundServer
from mri.serve.server import ServerLimits
from tests.test_serve import serve_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """serve.yaml's app on the tiny checkpoints, on a real socket (short deadlines: a stuck request fails fast)."""
    folder = tmp_path_factory.mktemp("api")
    with BackgroundServer(serve_app(trained, folder, folder / "index"), ServerLimits(header_timeout=5, body_timeout=5)
                          ) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_schema_docs_and_health(server):
    with httpx.Client(base_url=server.url) as client:
        schema = client.get("/openapi.json").json()
        assert schema["openapi"].startswith("3.1")
        recommend = schema["paths"]["/api/recommend"]["post"]
        assert "multipart/form-data" in recommend["requestBody"]["content"]
        assert {"200", "400", "411", "413", "415", "422"} <= set(recommend["responses"])
        assert "PhotoResult" in recommend["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["models_loaded"] and health["songs"] > 0
        assert health["rerank"] is False
        nothing = client.get("/no/such/page")
        assert nothing.status_code == 404 and nothing.json()["detail"].startswith("There is nothing at /no/such/page")


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@fuzzed.parametrize()
@settings(max_examples=25, deadline=5000, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_answer_is_documented_and_no_server_error(case, server):
    """Positive and negative cases of every operation: no 5xx, every status, type and body as documented."""
    # excluded: "a schema-valid request must be accepted": the schema's photo is any bytes, most are not a photo
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance], timeout=10)
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"  # the server is up
