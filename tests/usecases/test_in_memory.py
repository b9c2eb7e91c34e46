"""in_memory_application(): each application has a database of its own, gone when closed."""

from __future__ import annotations

from domain.actors import OPERATOR
from tests.support.applications import in_memory_application, position


def test_in_memory_applications_share_nothing():
    first, second = in_memory_application(), in_memory_application()
    try:
        organization, _ = first.create_organization("Acme", OPERATOR)

        assert position(first) == 2 and position(second) == 0
        assert [k["type"] for k in first.event_history(organization.id)][0] == (
            "OrganizationCreated"
        )
        assert second.event_history(organization.id) == []
    finally:
        first.close()
        second.close()
    again = in_memory_application()
    assert position(again) == 0
    again.close()
