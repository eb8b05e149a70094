"""/queues."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import Queue
from reelsync.server.api_v1.schemas import ItemList, QueueCreate, QueueUpdate, all_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import queues

router = APIRouter(prefix="/queues", tags=["queues"])


@router.get("")
def list_queues(db: DatabaseDep, actor: CurrentActor) -> ItemList[Queue]:
    return all_of(queues.list_queues(db, actor))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_queue(body: QueueCreate, db: DatabaseDep, actor: CurrentActor) -> Queue:
    return queues.create_queue(
        db,
        actor,
        code=body.code,
        name=body.name,
        priority=body.priority,
        default=body.default,
        paused=body.paused,
    )


@router.get("/{ref}")
def get_queue(ref: str, db: DatabaseDep, actor: CurrentActor) -> Queue:
    return queues.get_queue(db, actor, ref)


@router.patch("/{ref}")
def update_queue(ref: str, body: QueueUpdate, db: DatabaseDep, actor: CurrentActor) -> Queue:
    return queues.update_queue(
        db,
        actor,
        ref,
        name=body.name,
        priority=body.priority,
        default=body.default,
        paused=body.paused,
    )


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_queue(ref: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    queues.delete_queue(db, actor, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
