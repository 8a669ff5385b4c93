"""A running tenant plane over real TLS with the identity world's two tenants, and helpers
for privacy tokens made the way an export makes them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from strongroom.audit.models import AuditEvent
from strongroom.identity.models import Role
from strongroom.privacy.keys import privacy_keys
from tests.conftest import database
from tests.functional.identity.support import Account, World, bearer, build_world
from tests.functional.support import RunningServer, serve_in_thread, verifying_context

REVERSE = "/api/v1/privacy/reverse"
KEYS = "/api/v1/privacy/keys"
ROTATE = "/api/v1/privacy/keys/rotate"
REVERSE_TAG = "user:privacy-token:reverse"


@dataclasses.dataclass
class Site:
    world: World
    server: RunningServer

    def client(self, account: Account) -> httpx.Client:
        return httpx.Client(base_url=self.server.url(""), headers=bearer(account),
                            verify=verifying_context(self.server.ca_file), timeout=30)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url(""),
                            verify=verifying_context(self.server.ca_file), timeout=30)

    def account(self, tenant: str, role: Role) -> Account:
        return self.world.account(tenant, role)

    def tokens(self, tenant: str | Account, values: list[str]) -> list[str]:
        """Tokens of ``values`` under the current key of the tenant (a slug of the world, or
        an account's), as the token transform makes them: the export code calls the same
        ``privacy_keys(...).tokens``."""
        owner = self.account(tenant, Role.ADMIN) if isinstance(tenant, str) else tenant
        dep = self.world.deployment
        with dep.transaction() as session:
            keys = privacy_keys(session, dep, owner.tenant_id)
        made = keys.tokens(values)
        assert None not in made
        return [t for t in made if t is not None]

    def audit_text(self, after_seq: int = 0) -> str:
        """Everything the audit trail recorded after ``after_seq``, as one text to scan."""
        with self.world.deployment.transaction() as session:
            rows = session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > after_seq))
            return "\n".join(
                json.dumps({c.name: str(getattr(row, c.key)) for c in AuditEvent.__table__.c})
                for row in rows
            )


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[Site]:
    with database(request.param, postgres_available) as url:
        world = build_world(tmp_path_factory.mktemp("privacy") / "home", url)
        try:
            with serve_in_thread(world.deployment) as server:
                yield Site(world, server)
            # No 500 and no unhandled error, refusals and races included.
            assert "Traceback" not in server.log_text()
            assert not [r for r in server.records if r.startswith("ERROR")], server.records
        finally:
            world.deployment.close()
