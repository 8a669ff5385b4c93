"""Tenant admins set their tenant's policy: MFA for all, an IP allow-list, and the
minimum cube cell count shown to viewers."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request

from strongroom.audit import EventTag
from strongroom.errors import InvalidInput
from strongroom.firewall.addresses import allowed
from strongroom.identity import services as identity
from strongroom.identity.models import TenantPolicy
from strongroom.identity.permissions import Permission
from strongroom.web.api.schemas import PolicyOut, PolicyUpdate
from strongroom.web.auth import current, deployment_of, route_options

router = APIRouter(prefix="/api/v1/policy", tags=["policy"])


def _out(policy: TenantPolicy) -> PolicyOut:
    return PolicyOut(require_mfa=policy.require_mfa, ip_allowlist=json.loads(policy.allowlist),
                     min_cell_count=policy.min_cell_count, updated_at=policy.updated_at)


@router.get("", response_model=PolicyOut, **route_options(Permission.POLICY_MANAGE))
def get_policy(request: Request) -> PolicyOut:
    """Your tenant's access policy."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        return _out(identity.tenant_policy(session, principal.tenant_id))


@router.put("", response_model=PolicyOut, **route_options(Permission.POLICY_MANAGE))
def set_policy(body: PolicyUpdate, request: Request) -> PolicyOut:
    """Require MFA for every user, limit access to the listed networks (CIDR), and/or set
    the minimum count of a cube cell shown to viewers (smaller cells are suppressed)."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        policy = identity.tenant_policy(session, principal.tenant_id)
        identity.set_tenant_policy(policy, body.require_mfa, body.ip_allowlist)
        if body.min_cell_count is not None:
            policy.min_cell_count = body.min_cell_count
        if not allowed(principal.address, identity.allowlist_networks(policy)):
            raise InvalidInput("the allow-list must include the address you are using now, "
                               "or you would lock yourself out")
        dep.audit.record_event(
            session, EventTag.POLICY_CHANGE, actor=principal.actor(), tenant=principal.tenant_id,
            details={"require_mfa": policy.require_mfa,
                     "allowlist_entries": len(json.loads(policy.allowlist)),
                     "min_cell_count": policy.min_cell_count},
        )
        return _out(policy)
