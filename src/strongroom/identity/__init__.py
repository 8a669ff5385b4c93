"""Accounts, passwords, MFA, sessions, tokens and roles."""
