"""Firewall policies: client addresses behind trusted proxies, IP allow-lists, rate limits."""
