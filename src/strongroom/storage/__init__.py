"""Immutable, content-addressed object storage under per-tenant prefixes."""
