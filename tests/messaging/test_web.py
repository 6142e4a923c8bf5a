"""The HTTP plumbing every service shares: keys, problem details, idempotent commands, health."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from messaging import db
from messaging.runtime import ServiceRuntime
from messaging.service import create_app
from messaging.settings import RuntimeSettings
from messaging.web import ApiKeys, Conflict, Org, command, organization
from tests.support import ADMIN_KEY, ORG, ORG_KEY, OTHER_ORG_KEY, auth

NOTES = db.Migration(
    "notes",
    1,
    "notes",
    """
    CREATE TABLE notes (id uuid PRIMARY KEY, organization_id text NOT NULL, text text NOT NULL);
""",
)


class Tip(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: Decimal


class NoteIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    copies: Annotated[int, msgspec.Meta(gt=0, le=10)] = 1
    price: Decimal | None = None
    tips: list[Tip] = []


class NotesController(Controller):
    path = "/notes"
    dependencies = {"organization_id": Provide(organization)}

    @post("/", status_code=201)
    async def create(
        self, request: Request[Any, Any, State], organization_id: Org, data: JSONBody[NoteIn]
    ) -> Response[bytes]:
        async def work(conn: db.Connection) -> dict[str, Any]:
            if data.text == "taken":
                raise Conflict("that note exists already")
            note_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO notes VALUES ($1, $2, $3)", note_id, organization_id, data.text
            )
            return {"id": str(note_id), "organization_id": organization_id, "text": data.text}

        return await command(request, organization_id, work, status=201)


@pytest.fixture
async def client(infra: Any, namespace: str) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = RuntimeSettings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=namespace
    )
    runtime = ServiceRuntime(
        service="notes",
        schema="notes",
        settings=settings,
        migrations=[NOTES],
        declare_topology=False,
    )
    keys = ApiKeys.parse(f"{ORG}={ORG_KEY},org_other={OTHER_ORG_KEY}", ADMIN_KEY)
    app = create_app(
        runtime=runtime, api_keys=keys, title="notes", route_handlers=[NotesController]
    )
    async with AsyncTestClient(app=app) as client:
        yield client


async def test_requests_without_a_valid_key_are_401_problems(client: AsyncTestClient[Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = await client.post("/notes", json={"text": "a"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401


async def test_invalid_bodies_are_400_problems_naming_the_field(
    client: AsyncTestClient[Any],
) -> None:
    cases = [
        ("copies", {"text": "a", "copies": "two"}),
        ("copies", {"text": "a", "copies": "2"}),  # no lenient conversion of strings
        ("copies", {"text": "a", "copies": 2.0}),
        ("copies", {"text": "a", "copies": True}),
        ("text", {"text": 7}),
        ("text", {"copies": 1}),
        ("surprise", {"text": "a", "surprise": True}),
        # msgspec reads a Decimal from a string too; a body must send money as a number
        ("price", {"text": "a", "price": "1.50"}),
        ("tips[1].amount", {"text": "a", "tips": [{"amount": 1}, {"amount": "2"}]}),
    ]
    for field, body in cases:
        response = await client.post("/notes", json=body, headers=auth())
        assert response.status_code == 400, body
        problem = response.json()
        assert problem["field"] == field, problem
        assert problem["title"] == "Invalid input"
    response = await client.post("/notes", json={"text": "a", "copies": 0}, headers=auth())
    assert (response.status_code, response.json()["field"]) == (400, "copies")
    response = await client.post("/notes", content=b"{broken", headers=auth())
    assert response.status_code == 400
    numbers = {"text": "priced", "price": 1.5, "tips": [{"amount": 2}], "copies": 2}
    response = await client.post("/notes", json=numbers, headers=auth())
    assert response.status_code == 201, response.text


async def test_domain_conflict_is_a_409_problem(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/notes", json={"text": "taken"}, headers=auth())
    assert response.status_code == 409
    assert response.json()["detail"] == "that note exists already"


async def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(
    client: AsyncTestClient[Any],
) -> None:
    headers = {**auth(), "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/notes", json={"text": "hello"}, headers=headers)
    again = await client.post("/notes", json={"text": "hello"}, headers=headers)
    other = await client.post("/notes", json={"text": "other"}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["field"] == "Idempotency-Key"
    # the same key belongs to each organization separately
    theirs = await client.post(
        "/notes",
        json={"text": "hello"},
        headers={**auth(OTHER_ORG_KEY), "Idempotency-Key": headers["Idempotency-Key"]},
    )
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


async def test_concurrent_requests_with_one_key_do_the_work_once(
    client: AsyncTestClient[Any],
) -> None:
    headers = {**auth(), "Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(client.post("/notes", json={"text": "once"}, headers=headers) for _ in range(5))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1


async def test_health_ready_and_admin_only_dead_letters(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = (await client.get("/ready")).json()
    assert ready["database"] is True
    assert (await client.get("/dead-letters", headers=auth())).status_code == 401
    listed = await client.get("/dead-letters", headers=auth(ADMIN_KEY))
    assert (listed.status_code, listed.json()) == (200, [])
    replay = await client.post("/dead-letters/replay", json={}, headers=auth(ADMIN_KEY))
    assert (replay.status_code, replay.json()) == (200, {"replayed": []})
    assert (await client.get("/schema/openapi.json")).status_code == 200


def test_api_keys_parse_and_reject_malformed_entries() -> None:
    keys = ApiKeys.parse("org_1=a, org_2=b", "admin")
    assert keys.organization_for("b") == "org_2"
    assert keys.organization_for("c") is None
    assert keys.is_admin("admin")
    assert not keys.is_admin("a")
    with pytest.raises(ValueError, match="org_123=secret"):
        ApiKeys.parse("org_1", None)


async def test_metrics_expose_runtime_and_http_figures(client: AsyncTestClient[Any]) -> None:
    await client.post("/notes", json={"text": "counted"}, headers=auth())

    response = await client.get("/metrics")

    assert response.status_code == 200
    text = response.text
    assert 'commerce_outbox_backlog{schema="notes_' in text
    assert "commerce_dead_letters_waiting" in text
    assert 'commerce_broker_connected{service="notes"}' in text
    pool = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "commerce_db_pool_connections"
        for sample in family.samples
    }
    assert pool.keys() == {"open", "idle"}
    assert 1 <= pool["open"] <= 10  # the runtime's pool holds 2 to 10
    assert 0 <= pool["idle"] <= pool["open"]
    assert 'commerce_requests_total{app_name="notes",method="POST",path="/notes"' in text


async def test_the_app_leaves_logging_to_structlog(client: AsyncTestClient[Any]) -> None:
    """Litestar's default logging config would put its own queue handler and INFO level on the
    root logger, so LOG_LEVEL and the JSON lines of messaging.logs would not apply."""
    import logging
    import logging.handlers

    root = logging.getLogger()
    assert not any(isinstance(h, logging.handlers.QueueHandler) for h in root.handlers)
    assert client.app.logging_config is None
