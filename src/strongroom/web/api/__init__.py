"""Tenant-plane API routers, one module per subject."""
