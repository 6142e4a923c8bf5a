"""`commerce saga …`: list and show checkout sagas, replay failed checkouts.

    commerce saga list --state Failed
    commerce saga show ORDER_ID
    commerce saga replay ORDER_ID [ORDER_ID …]
    commerce saga replay --all-failed

A replay writes the saga and its PlaceOrderCommand in one transaction per saga (the outbox), then
publishes what waits in the outbox; a running finance service would publish it as well.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from finance_service import handlers, views
from finance_service.adapters import sagas
from finance_service.config import Settings
from finance_service.domain.saga import SagaNotFound, SagaNotReplayable, SagaPolicy, SagaState
from finance_service.main import SCHEMA, migrations
from messaging import db
from messaging.outbox import Outbox
from messaging.settings import RuntimeSettings


def register(subparsers: Any) -> None:
    saga = subparsers.add_parser("saga", help="checkout sagas: list, show, replay failed ones")
    actions = saga.add_subparsers(dest="saga_action", required=True)

    listing = actions.add_parser("list", help="list sagas, newest change first")
    listing.add_argument("--state", choices=[s.value for s in SagaState])
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one saga with its transitions")
    show.add_argument("order_id", type=uuid.UUID)
    show.set_defaults(handler=_show)

    replay = actions.add_parser("replay", help="send Failed sagas back to Placed")
    replay.add_argument("order_ids", nargs="*", type=uuid.UUID, metavar="ORDER_ID")
    replay.add_argument("--all-failed", action="store_true", help="every saga that is Failed")
    replay.set_defaults(handler=_replay)


# -- handlers: (args, settings) -> exit code -------------------------------------------------------


def _list(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    state = SagaState(args.state) if args.state else None
    found = asyncio.run(
        _read(settings, lambda c: views.saga_list(c, state=state, limit=args.limit))
    )
    for s in found:
        timeout = f"  timeout {s.timeout_at:%Y-%m-%d %H:%M:%S}" if s.timeout_at else ""
        changed = f"{s.updated_at:%Y-%m-%d %H:%M:%S}"
        print(f"{s.order_id}  {s.state:<9}  attempts {s.attempts}  {changed}{timeout}")
    print(f"{len(found)} saga(s)")
    return 0


def _show(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    try:
        view = asyncio.run(_read(settings, lambda c: views.saga_view(c, args.order_id)))
    except SagaNotFound as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{view.order_id}  {view.state}  attempts {view.attempts}")
    for t in view.transitions:
        origin = t.from_state or "-"
        print(f"  {t.at:%Y-%m-%d %H:%M:%S}  {origin:<9} → {t.to_state:<9}  {t.message_id}")
    return 0


def _replay(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    return asyncio.run(_replay_async(args, settings))


async def _replay_async(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    if bool(args.order_ids) == bool(args.all_failed):
        print("saga replay: give ORDER_ID(s) or --all-failed (not both)", file=sys.stderr)
        return 2
    policy = _policy(settings)
    schema = await _prepare(settings)
    conn = await db.connect(settings.database_url, schema)
    try:
        order_ids: Sequence[uuid.UUID] = (
            await sagas.order_ids_in_state(conn, SagaState.FAILED)
            if args.all_failed
            else args.order_ids
        )
        replayed, refused = await replay_each(conn, Outbox(schema), order_ids, policy)
    finally:
        await conn.close()
    print(f"{len(replayed)} saga(s) replayed, {len(refused)} refused")
    if replayed:
        await _publish(settings)
    return 1 if refused and not args.all_failed else 0


async def replay_each(
    conn: db.Connection,
    outbox: Outbox,
    order_ids: Sequence[uuid.UUID],
    policy: SagaPolicy,
    *,
    progress: TextIO | None = None,
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Replay sagas one transaction each, with a progress bar when there are several."""
    bar = ProgressBar(len(order_ids), progress or sys.stderr) if len(order_ids) > 1 else None
    replayed: list[uuid.UUID] = []
    refused: list[uuid.UUID] = []
    for order_id in order_ids:
        try:
            async with conn.transaction():
                await handlers.replay(conn, outbox, order_id, policy)
        except (SagaNotFound, SagaNotReplayable) as exc:
            refused.append(order_id)
            if bar is None:
                print(f"refused: {exc}", file=sys.stderr)
            else:
                bar.note(f"refused: {exc}")
        else:
            replayed.append(order_id)
        if bar is not None:
            bar.advance()
    if bar is not None:
        bar.close()
    return replayed, refused


class ProgressBar:
    """`[##########----------]  12/40` redrawn in place on a terminal stream."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total, self.done, self.stream, self.width = total, 0, stream, width
        self._draw()

    def advance(self) -> None:
        self.done += 1
        self._draw()

    def note(self, text: str) -> None:
        """A line above the bar (the bar is drawn again below it)."""
        self.stream.write("\r" + text.ljust(self.width + 2 * len(str(self.total)) + 4) + "\n")
        self._draw()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        filled = self.width * self.done // self.total if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done:>{len(str(self.total))}}/{self.total}")
        self.stream.flush()


# -- plumbing -------------------------------------------------------------------------------------


def _policy(settings: RuntimeSettings) -> SagaPolicy:
    return dataclasses.replace(Settings.from_env(), runtime=settings).policy


async def _prepare(settings: RuntimeSettings) -> str:
    schema = settings.schema(SCHEMA)
    await db.prepare_schema(settings.database_url, schema, migrations())
    return schema


async def _read(settings: RuntimeSettings, query: Any) -> Any:
    conn = await db.connect(settings.database_url, await _prepare(settings))
    try:
        return await query(conn)
    finally:
        await conn.close()


async def _publish(settings: RuntimeSettings) -> None:
    from messaging.cli import SERVICES, flush_outbox  # the CLI's own: publish now, not later

    await flush_outbox(settings, SERVICES["finance"])
