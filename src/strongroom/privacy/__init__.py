"""Privacy transforms for exports: pseudonyms, reversible tokens, masking, generalisation,
and k-anonymity / l-diversity checks.

- :mod:`strongroom.privacy.keys` — per-tenant, versioned pseudonymisation keys
  (``privacy_keys``, ``rotate_privacy_keys``, ``reverse_tokens``).
- :mod:`strongroom.privacy.transforms` — ``compile_transforms`` validates column
  transform specs against a schema into a :class:`ColumnPlan` that rewrites Arrow batches.
- :mod:`strongroom.privacy.anonymity` — ``anonymise`` suppresses rows in equivalence
  classes smaller than k (or less diverse than l) and reports what it did.

The package holds no primitives: HMAC and AES-SIV live in ``strongroom.crypto.pseudonyms``.
Submodules are imported by name (this file imports none, so ``strongroom.models`` can
load ``privacy.models`` without pulling in the rest).
"""
