"""HTTP plumbing every service shares: API keys, problem details, idempotent commands, health,
readiness and dead-letter administration (SPEC §8, §9).

A route that changes state calls `command(...)`: it opens the transaction, honours the request's
`Idempotency-Key` inside that same transaction (so a stored response and the state change commit
together), runs the domain work and encodes the answer once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgspec
import msgspec.inspect
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from messaging import db, metrics
from messaging.dead_letters import list_dead_letters, replay_dead_letters
from messaging.logs import get_logger
from messaging.runtime import ServiceRuntime

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
MAX_IDEMPOTENCY_KEY = 200


# -- errors ------------------------------------------------------------------------------------


class DomainError(Exception):
    """A request the domain refuses; mapped to a problem-details response in one place."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(DomainError):
    status, title = 400, "Invalid input"


class NotFound(DomainError):
    status, title = 404, "Not found"


class Conflict(DomainError):
    """An illegal state transition or a clash with what already exists."""

    status, title = 409, "Conflict"


def problem(status: int, title: str, detail: str, **extra: Any) -> Response[bytes]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON)


_FIELD_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")
_FIELD_NAME = re.compile(r"field `(?P<name>[^`]+)`")


def _field_of(message: str) -> str | None:
    """The field a msgspec error names: its path (`at `$.items[0].quantity``) or, for a check of
    a whole struct (`at `$``), the field its message names."""
    for pattern in (_FIELD_PATH, _FIELD_NAME):
        match = pattern.search(message)
        if match is not None and match.group(1):
            return match.group(1)
    return None


async def strict_body(request: Request[Any, Any, State]) -> None:
    """`before_request` of every app: the body of a route that takes `data` must decode under
    msgspec's strict rules. (Litestar converts leniently: `"2"` would pass for an int, `"true"`
    for a bool.) Malformed JSON is left to Litestar, which answers it with a 400 too."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return
    body = await request.body()
    try:
        msgspec.json.decode(body, type=data.annotation)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), field=_field_of(str(exc))) from exc
    except msgspec.DecodeError:
        return
    kind = _with_decimals(data.annotation)
    field = None if kind is None else _decimal_sent_as_text(kind, msgspec.json.decode(body), "")
    if field is not None:
        raise InvalidInput(f"Expected `number`, got `str` - at `$.{field}`", field=field)


@functools.cache
def _with_decimals(annotation: Any) -> msgspec.inspect.Type | None:
    """The body type's msgspec description if a Decimal is anywhere in it, else None."""
    kind = msgspec.inspect.type_info(annotation)
    seen: set[int] = set()

    def walk(node: msgspec.inspect.Type) -> bool:
        if isinstance(node, msgspec.inspect.DecimalType):
            return True
        if isinstance(node, msgspec.inspect.StructType):
            if id(node) in seen:  # recursive structs
                return False
            seen.add(id(node))
            return any(walk(f.type) for f in node.fields)
        if isinstance(node, msgspec.inspect.Metadata | msgspec.inspect.CollectionType):
            return walk(node.type if isinstance(node, msgspec.inspect.Metadata) else node.item_type)
        if isinstance(node, msgspec.inspect.UnionType | msgspec.inspect.TupleType):
            members = node.types if isinstance(node, msgspec.inspect.UnionType) else node.item_types
            return any(walk(m) for m in members)
        return False

    return kind if walk(kind) else None


def _decimal_sent_as_text(kind: msgspec.inspect.Type, value: Any, path: str) -> str | None:
    """The path of the first Decimal field (money, weights) the JSON gives as a string.

    msgspec decodes a Decimal from a JSON number or from a string, in strict mode too (a
    string is its own encoding of Decimal); a request body must send a number, as it must for
    an int. `value` is the body decoded without a type; it has passed the typed decode."""
    if isinstance(kind, msgspec.inspect.Metadata):
        return _decimal_sent_as_text(kind.type, value, path)
    if isinstance(kind, msgspec.inspect.DecimalType):
        return path if isinstance(value, str) else None
    if isinstance(kind, msgspec.inspect.UnionType):
        if isinstance(value, str) and any(
            isinstance(m, msgspec.inspect.StrType) for m in kind.types
        ):
            return None  # a string is one of the union's own forms
        for member in kind.types:
            if value is not None and isinstance(member, msgspec.inspect.NoneType):
                continue
            found = _decimal_sent_as_text(member, value, path)
            if found is not None:
                return found
        return None
    if isinstance(kind, msgspec.inspect.StructType) and isinstance(value, dict):
        for field in kind.fields:
            if field.encode_name in value:
                name = f"{path}.{field.name}" if path else field.name
                found = _decimal_sent_as_text(field.type, value[field.encode_name], name)
                if found is not None:
                    return found
        return None
    if isinstance(value, list):
        if isinstance(kind, msgspec.inspect.CollectionType):
            members = [kind.item_type] * len(value)
        elif isinstance(kind, msgspec.inspect.TupleType):
            members = list(kind.item_types)
        else:
            return None
        for index, (member, item) in enumerate(zip(members, value, strict=False)):
            found = _decimal_sent_as_text(member, item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _domain_error(_: Request[Any, Any, State], exc: DomainError) -> Response[bytes]:
    extra = {"field": exc.field} if exc.field else {}
    return problem(exc.status, exc.title, exc.detail, **extra)


def _validation_error(_: Request[Any, Any, State], exc: ValidationException) -> Response[bytes]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message = str(item.get("message", "")) if isinstance(item, dict) else str(item)
        key = item.get("key") if isinstance(item, dict) else None
        field = _field_of(message) or (key if key != "data" else None)
        errors.append({"field": field, "message": message})
    fields = [e["field"] for e in errors if e["field"]]
    detail = exc.detail if not errors else "; ".join(str(e["message"]) for e in errors)
    extra: dict[str, Any] = {"errors": errors}
    if fields:
        extra["field"] = fields[0]
    return problem(400, "Invalid input", detail, **extra)


def _http_error(_: Request[Any, Any, State], exc: HTTPException) -> Response[bytes]:
    response = problem(exc.status_code, _title(exc.status_code), str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _unexpected_error(request: Request[Any, Any, State], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal server error",
        "The server failed to handle the request; it has been logged.",
    )


def _title(status: int) -> str:
    return {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict",
        413: "Payload too large",
        503: "Service unavailable",
    }.get(status, "Error")


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}


# -- API keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """`COMMERCE_API_KEYS="org_123=key1,org_456=key2"` and `COMMERCE_ADMIN_KEY`."""

    keys: tuple[tuple[str, str], ...]  # (key, organization)
    admin_key: str | None

    @classmethod
    def parse(cls, spec: str, admin_key: str | None) -> ApiKeys:
        pairs = []
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            organization, sep, key = entry.partition("=")
            if not sep or not organization.strip() or not key.strip():
                raise ValueError("COMMERCE_API_KEYS entries look like org_123=secret")
            pairs.append((key.strip(), organization.strip()))
        return cls(tuple(pairs), admin_key or None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiKeys:
        env = os.environ if environ is None else environ
        return cls.parse(env.get("COMMERCE_API_KEYS", ""), env.get("COMMERCE_ADMIN_KEY"))

    def organization_for(self, presented: str) -> str | None:
        found = None
        for key, organization in self.keys:  # compare all, in constant time each
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = organization
        return found

    def is_admin(self, presented: str) -> bool:
        return self.admin_key is not None and hmac.compare_digest(
            self.admin_key.encode(), presented.encode()
        )


def _bearer(request: Request[Any, Any, State]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException(
            "missing bearer API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return token.strip()


def api_keys_of(request: Request[Any, Any, State]) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


async def organization(request: Request[Any, Any, State]) -> str:
    """Dependency: the organization of the caller's API key; 401 without a valid one."""
    found = api_keys_of(request).organization_for(_bearer(request))
    if found is None:
        raise NotAuthorizedException("unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return found


Org: TypeAlias = NamedDependency[str]
"""A route's parameter for the caller's organization, which a controller provides with
`Provide(organization)` under the parameter's name."""


async def admin(request: Request[Any, Any, State]) -> None:
    """Dependency for operator endpoints: the `COMMERCE_ADMIN_KEY` only."""
    if not api_keys_of(request).is_admin(_bearer(request)):
        raise NotAuthorizedException("admin key required", headers={"WWW-Authenticate": "Bearer"})


# -- idempotent commands ---------------------------------------------------------------------------


def runtime_of(request: Request[Any, Any, State]) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def command(
    request: Request[Any, Any, State],
    organization_id: str,
    work: Callable[[db.Connection], Awaitable[Any]],
    *,
    status: int = 200,
    atomic: bool = False,
) -> Response[bytes]:
    """Run `work` in one transaction and answer with its result as JSON.

    With an `Idempotency-Key` header, the first answer is stored in that same transaction; the
    same key and body later replays it, the same key with another body is a 409.

    `atomic`: `work` makes its whole change in one statement and reads only before it, so
    without an Idempotency-Key it runs without a transaction of its own — two round trips
    (BEGIN, COMMIT) fewer, and the locks of that statement end with it."""
    runtime = runtime_of(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            field="Idempotency-Key",
        )
    fingerprint = hashlib.sha256(
        f"{request.method} {request.url.path}\n".encode() + await request.body()
    ).hexdigest()
    if key is None and atomic:
        async with db.acquire(runtime.pool) as conn:
            body = msgspec.json.encode(await work(conn))
        return Response(body, status_code=status, media_type="application/json")
    async with db.acquire(runtime.pool) as conn, conn.transaction():
        if key is not None:
            stored = await _claim(conn, organization_id, key, fingerprint)
            if stored is not None:
                return Response(
                    stored[1],
                    status_code=stored[0],
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
        body = msgspec.json.encode(await work(conn))
        if key is not None:
            await conn.execute(
                "UPDATE idempotency_keys SET status = $3, body = $4"
                " WHERE organization_id = $1 AND key = $2",
                organization_id,
                key,
                status,
                body,
            )
    return Response(body, status_code=status, media_type="application/json")


async def _claim(
    conn: db.Connection, organization_id: str, key: str, fingerprint: str
) -> tuple[int, bytes] | None:
    # A concurrent request with the same key waits on the unique index until the first commits.
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_keys (organization_id, key, request_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        organization_id,
        key,
        fingerprint,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status, body FROM idempotency_keys"
        " WHERE organization_id = $1 AND key = $2",
        organization_id,
        key,
    )
    assert row is not None
    if row["request_hash"] != fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different request",
            field="Idempotency-Key",
        )
    return int(row["status"]), bytes(row["body"])


# -- health, readiness, dead letters ----------------------------------------------------------


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ids: list[int] | None = None
    queue: str | None = None


class OperationsController(Controller):
    """`/health`, `/ready` and the admin-only `/dead-letters` endpoints of a service."""

    tags = ["operations"]

    @get("/health", summary="Liveness")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Readiness: Postgres and RabbitMQ reachable")
    async def ready(self, request: Request[Any, Any, State]) -> Response[dict[str, Any]]:
        checks = await runtime_of(request).ready()
        ok = all(checks.values())
        return Response(
            {"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503
        )

    @get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(self, request: Request[Any, Any, State]) -> Response[bytes]:
        runtime = runtime_of(request)
        schema = runtime.schema
        metrics.BROKER_CONNECTED.labels(runtime.service).set(runtime.broker.is_connected)
        metrics.DB_POOL.labels(schema, "open").set(runtime.pool.get_size())
        metrics.DB_POOL.labels(schema, "idle").set(runtime.pool.get_idle_size())
        try:
            backlog, age = await runtime.relay.backlog()
            async with db.acquire(runtime.pool) as conn:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL"
                )
                for probe in runtime.metric_probes:
                    await probe(conn)
        except Exception as exc:  # still expose what we have while Postgres is away
            log.warning("metrics without database figures", error=repr(exc))
        else:
            metrics.OUTBOX_BACKLOG.labels(schema).set(backlog)
            metrics.OUTBOX_AGE.labels(schema).set(age)
            metrics.DEAD_LETTERS.labels(schema).set(waiting)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @get("/dead-letters", summary="Messages consumers gave up on", dependencies={})
    async def dead_letters(
        self,
        request: Request[Any, Any, State],
        queue: FromQuery[str | None] = None,
        include_replayed: FromQuery[bool] = False,
        limit: FromQuery[int] = 100,
        after_id: FromQuery[int] = 0,
    ) -> list[dict[str, Any]]:
        await admin(request)
        if not 0 < limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        async with db.acquire(runtime_of(request).pool) as conn:
            letters = await list_dead_letters(
                conn, queue=queue, include_replayed=include_replayed, limit=limit, after_id=after_id
            )
        return [
            {
                "id": d.id,
                "queue": d.queue,
                "message_id": d.message_id,
                "exchange": d.exchange,
                "routing_key": d.routing_key,
                "type": d.type,
                "correlation_id": d.correlation_id,
                "reason": d.reason,
                "attempts": d.attempts,
                "failed_at": d.failed_at,
                "replayed_at": d.replayed_at,
                "replay_count": d.replay_count,
                "body": d.body.decode("utf-8", "replace"),
            }
            for d in letters
        ]

    @post("/dead-letters/replay", summary="Send dead letters back to their queue", status_code=200)
    async def replay(
        self, request: Request[Any, Any, State], data: JSONBody[ReplayRequest]
    ) -> dict[str, list[int]]:
        await admin(request)
        runtime = runtime_of(request)
        async with db.acquire(runtime.pool) as conn:
            replayed = await replay_dead_letters(
                conn, runtime.outbox, app_id=runtime.service, ids=data.ids, queue=data.queue
            )
        return {"replayed": replayed}
