"""Keys and ciphers. The only package allowed to import cryptographic primitives.

Everything else calls the helpers here: :class:`MasterKey` (the root of the
hierarchy, bound to the environment), :class:`TenantKeyRing` (per-tenant Tink
keysets), :func:`seal_stream` / :func:`open_stream` (streaming AEAD for objects)
and :class:`TenantParquetKms` (Parquet modular encryption data keys).
"""
