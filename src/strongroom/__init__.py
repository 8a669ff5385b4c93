"""Strongroom: a self-hostable cloud for customers' personal data."""

__version__ = "0.1.0"
