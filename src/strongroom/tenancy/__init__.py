"""Tenants: the client organisations whose data a deployment keeps apart."""
