"""The audit trail: tamper-evident, fail-closed, with provable retention.

Every domain and edge records through :meth:`AuditTrail.record_event`, in the
same database transaction as the change it describes. Events form a SHA-256
hash chain with gapless sequence numbers, each sealed with an HMAC under a
deployment key; Ed25519-signed checkpoints anchor the head and can be
exported, and retention purges leave signed purge records so that
``strongroom audit verify`` tells a lawful purge from an attack.
"""

from strongroom.audit.actors import Actor
from strongroom.audit.services import AuditTrail, Sensitive
from strongroom.audit.tags import EventClass, EventTag, Outcome

__all__ = ["Actor", "AuditTrail", "EventClass", "EventTag", "Outcome", "Sensitive"]
