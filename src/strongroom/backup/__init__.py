"""Backups: consistent, encrypted, signed snapshots; retention, holds, verify, drills, restore."""
