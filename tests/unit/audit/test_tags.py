"""One vocabulary: tags shaped source:subject:action, each with an event class."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, cast

import pytest
from tests.unit.audit.conftest import sql

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.audit.tags import TAG_CLASS, EventClass, event_class
from strongroom.deployment import Deployment

TAG_SHAPE = re.compile(r"(operator|user|system):[a-z]+(-[a-z]+)*:[a-z]+(-[a-z]+)*")


@pytest.mark.parametrize("tag", list(EventTag), ids=str)
def test_every_tag_is_source_subject_action_with_a_class(tag: EventTag) -> None:
    assert TAG_SHAPE.fullmatch(tag.value), f"{tag.name} is not source:subject:action"
    assert isinstance(event_class(tag), EventClass)


def test_the_class_table_covers_exactly_the_tags() -> None:
    assert set(TAG_CLASS) == set(EventTag)


def test_tag_values_are_unique() -> None:
    values = [tag.value for tag in EventTag]
    assert len(values) == len(set(values))


class LookAlike(StrEnum):
    TENANT_CREATE = "operator:tenant:create"


@pytest.mark.parametrize("tag", ["operator:tenant:create", LookAlike.TENANT_CREATE, None])
def test_record_event_refuses_anything_but_an_event_tag(
    deployment: Deployment, tag: object
) -> None:
    head = sql(deployment, "SELECT seq, hash FROM audit_head")
    with deployment.transaction() as session, pytest.raises(TypeError, match="EventTag"):
        deployment.audit.record_event(session, cast(EventTag, tag), actor=Actor.system())
    assert sql(deployment, "SELECT seq, hash FROM audit_head") == head


@pytest.mark.parametrize(
    "details",
    [
        {"blob": b"raw bytes"},
        {"when": object()},
        {1: "not a string key"},
        {"ratio": float("nan")},
    ],
    ids=["bytes", "object", "int-key", "nan"],
)
def test_record_event_refuses_details_it_cannot_store_faithfully(
    deployment: Deployment, details: dict[Any, Any]
) -> None:
    with deployment.transaction() as session, pytest.raises((TypeError, ValueError)):
        deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system(),
                                      details=details)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("reason", {"reason": "r" * 201}),
        ("target", {"target": "t" * 129}),
        ("tenant_id", {"tenant": "x" * 33}),
        ("actor_id", {"actor": Actor(kind="user", id="u" * 65)}),
    ],
)
def test_over_long_fields_are_refused_alike_on_every_database(
    deployment: Deployment, field: str, kwargs: dict[str, Any]
) -> None:
    """PostgreSQL would refuse them and SQLite keep them; both refuse them up front."""
    kwargs.setdefault("actor", Actor.system())
    with deployment.transaction() as session, pytest.raises(ValueError, match=field):
        deployment.audit.record_event(session, EventTag.AUDIT_READ, **kwargs)


def test_outcome_must_be_an_outcome(deployment: Deployment) -> None:
    with deployment.transaction() as session, pytest.raises(ValueError, match="maybe"):
        deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system(),
                                      outcome=cast(Outcome, "maybe"))


def test_sensitive_never_prints_its_value() -> None:
    secret = Sensitive("jane@example.com")
    assert "jane" not in repr(secret)
    assert "jane" not in str(secret)
    assert "jane" not in f"{[secret]}"


def test_user_agent_is_clipped_and_printable(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        event = deployment.audit.record_event(
            session, EventTag.AUDIT_READ,
            actor=Actor(kind="user", id="u-1", user_agent="agent\x00\x1b[31m" + "x" * 500),
        )
    (agent,) = sql(deployment, "SELECT actor_agent FROM audit_events WHERE seq = :seq",
                   seq=event.seq)[0]
    assert len(agent) == 200
    assert agent.isprintable()
