"""Database.transaction: several service calls in one transaction (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.errors import ConflictError, InternalError, ValidationError
from reelsync.services import sites


def test_calls_inside_commit_together_or_not_at_all(database: Database, admin: Actor) -> None:
    with database.transaction():
        sites.create_site(database, admin, code="paris")
        sites.update_site(database, admin, "paris", name="Paris office")  # sees its own write
    assert sites.get_site(database, admin, "paris").name == "Paris office"

    def refused_after_a_create() -> None:
        with database.transaction():
            sites.create_site(database, admin, code="rome")
            assert sites.get_site(database, admin, "rome").code == "rome"  # a read inside sees it
            raise ValidationError("refused")

    with pytest.raises(ValidationError, match="refused"):
        refused_after_a_create()
    assert "rome" not in {s.code for s in sites.list_sites(database, admin)}


def test_a_failing_service_call_undoes_the_earlier_ones(database: Database, admin: Actor) -> None:
    def twice() -> None:
        with database.transaction():
            sites.create_site(database, admin, code="oslo")
            sites.create_site(database, admin, code="oslo")  # already exists

    with pytest.raises(ConflictError):
        twice()
    assert "oslo" not in {s.code for s in sites.list_sites(database, admin)}
    with database.transaction(), database.transaction():  # nested: joins the outer one
        sites.create_site(database, admin, code="oslo")
    assert "oslo" in {s.code for s in sites.list_sites(database, admin)}


def test_a_snapshot_is_one_read_transaction_its_readers_join(
    database: Database, admin: Actor
) -> None:
    sites.create_site(database, admin, code="paris")
    begun: list[object] = []
    event.listen(database.engine, "begin", begun.append)
    with database.snapshot():
        codes = {s.code for s in sites.list_sites(database, admin)}
        assert "paris" in codes
        assert sites.get_site(database, admin, "paris").code == "paris"
        with pytest.raises(InternalError, match="snapshot"):  # it only reads
            sites.create_site(database, admin, code="rome")
    assert len(begun) == 1
    assert "rome" not in {s.code for s in sites.list_sites(database, admin)}
