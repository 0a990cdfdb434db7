"""Every service's OpenAPI document tells the truth about each operation: its id, what it does, an
example, the key and scope it needs (as the route's ``require_scope`` checks them), and the problem
body it answers with when the key is missing or lacks the scope."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from leadflow_kit.bodies import REQUIRED_SCOPE_ATTRIBUTE, scope_checks

SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PROBLEM = {"$ref": "#/components/schemas/Problem"}


def build(service: str) -> FastAPI:
    app_module = importlib.import_module(f"leadflow_{service}.app")
    settings_module = importlib.import_module(f"leadflow_{service}.settings")
    app: FastAPI = app_module.create_app(settings_module.Settings(environment="test"))
    return app


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


def declared_scopes(app: FastAPI) -> dict[tuple[str | None, str], list[str]]:
    """What each route's ``require_scope`` dependencies check, read from the routes themselves."""
    return {(context.path_format, method.lower()): [s for check in scope_checks(context.original_route)
                                                    for s in getattr(check, REQUIRED_SCOPE_ATTRIBUTE)]
            for context in iter_route_contexts(app.routes) if isinstance(context.original_route, APIRoute)
            for method in context.methods or ()}


def has_example(part: object, schemas: dict[str, Any]) -> bool:
    text = json.dumps(part)
    if '"example' in text:
        return True
    refs = [chunk.split('"')[0] for chunk in text.split("#/components/schemas/")[1:]]
    return any('"example' in json.dumps(schemas[ref]) for ref in refs)


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest) -> tuple[FastAPI, dict[str, Any]]:
    app = build(request.param)
    return app, app.openapi()


def test_the_key_schemes_are_declared(service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, doc = service
    assert doc["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "lf_<public id>_<secret>",
                   "description": "An API key, as `Authorization: Bearer <key>`"},
        "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "The same API key, as `X-API-Key: <key>`"},
    }


def test_every_operation_has_a_stable_unique_snake_case_id_and_a_summary(
        service: tuple[FastAPI, dict[str, Any]]) -> None:
    app, doc = service
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if not SNAKE_CASE.match(i)] == []
    names = {route.name for route in app.routes if isinstance(route, APIRoute)}
    names |= {context.original_route.name for context in iter_route_contexts(app.routes)
              if isinstance(context.original_route, APIRoute)}
    assert set(ids) <= names, "an operation id is its route function's name"
    assert [f"{m} {p}" for p, m, op in operations(doc) if not op.get("summary")] == []


def test_every_operation_has_an_example(
        service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, doc = service
    schemas = doc["components"]["schemas"]
    missing = [f"{m.upper()} {p}" for p, m, op in operations(doc)
               if not (has_example(op.get("requestBody", {}), schemas) or has_example(op["responses"], schemas))]
    assert missing == []
    bodies = [f"{m.upper()} {p}" for p, m, op in operations(doc)
              if "requestBody" in op and not has_example(op["requestBody"], schemas)]
    assert bodies == []


def test_every_success_answer_has_an_example(service: tuple[FastAPI, dict[str, Any]]) -> None:
    """What a 2xx answers is shown, not only its errors: an example on the response, or on the schema it
    names (a list's items included)."""
    _, doc = service
    schemas = doc["components"]["schemas"]
    missing = [f"{m.upper()} {p} {code}" for p, m, op in operations(doc)
               for code, response in op["responses"].items() if code.startswith("2")
               for content in (response.get("content") or {}).values()
               if not ("example" in content or "examples" in content or has_example(content.get("schema"), schemas))]
    assert missing == []


def examples_of(doc: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(where, example, schema) for every example a schema or a request or response body carries."""
    found = [(f"schema {name}", example, schema) for name, schema in doc["components"]["schemas"].items()
             for example in schema.get("examples", [])]
    for path, method, op in operations(doc):
        bodies = [("request", op.get("requestBody", {})), *op["responses"].items()]
        for part, body in bodies:
            for media, content in body.get("content", {}).items():
                if "schema" not in content or "json" not in media:
                    continue
                values = [content["example"]] if "example" in content else []
                values += [named["value"] for named in content.get("examples", {}).values()]
                found += [(f"{method.upper()} {path} {part} {media}", value, content["schema"]) for value in values]
    return found


def test_every_example_is_valid_for_its_schema(service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, doc = service
    examples = examples_of(doc)
    assert examples
    wrong = []
    for where, example, schema in examples:
        validator = Draft202012Validator({**schema, "components": doc["components"]})
        wrong += [f"{where}: {error.message}" for error in validator.iter_errors(example)]
    assert wrong == []


def test_security_matches_the_scope_each_route_checks(service: tuple[FastAPI, dict[str, Any]]) -> None:
    app, doc = service
    scopes = declared_scopes(app)
    for path, method, op in operations(doc):
        required = scopes[(path, method)]
        if required:
            assert op["x-required-scopes"] == required, (method, path)
            assert op["security"] == [{scheme: [scope]} for scope in required for scheme in ("bearer", "api_key")]
            for code, detail in (("401", "API key required"), ("403", "API key")):
                content = op["responses"][code]["content"]["application/problem+json"]
                assert content["schema"] == PROBLEM, (method, path, code)
                assert content["example"]["status"] == int(code)
                assert detail in content["example"]["detail"], (method, path)
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
        elif "security" in op:
            # A route that asks for a key only for some requests says so: no key is one of the options.
            assert op["security"][0] == {}, (method, path)
            assert op["x-required-scopes"], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_public_routes_need_no_key(service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, doc = service
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in doc["paths"][path]["get"]


def test_admin_routes_are_scoped() -> None:
    doc = build("capture").openapi()
    assert doc["paths"]["/v1/admin/forms"]["post"]["x-required-scopes"] == ["forms:write"]
    assert doc["paths"]["/v1/admin/forms"]["get"]["security"] == [{"bearer": ["forms:read"]},
                                                                  {"api_key": ["forms:read"]}]
    assert "security" not in doc["paths"]["/v1/forms/{form_key}/submissions"]["post"]
    assert doc["paths"]["/v1/activities"]["post"]["security"] == [
        {}, {"bearer": ["activities:write"]}, {"api_key": ["activities:write"]}]
    routing = build("routing").openapi()
    assert routing["paths"]["/v1/leads/{lead_id}/assignment"]["get"]["x-required-scopes"] == [
        "routing:read", "crm:events"]


def test_every_model_example_is_one_the_model_accepts(service: tuple[FastAPI, dict[str, Any]]) -> None:
    """Beyond the JSON Schema: a model's own validators (a rule names one target, ...) accept its examples."""
    app, _ = service
    models: set[type[BaseModel]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        body = route.body_field.field_info.annotation if route.body_field is not None else None
        for annotation in (body, route.response_model):
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                models.add(annotation)
    assert models
    for model in models:
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples", []) if isinstance(extra, dict) else []
        assert isinstance(examples, list), examples
        for example in examples:
            model.model_validate(example)
