"""Bounce handling: a pure classifier (message bytes → verdict); inbox scanning lives beside it."""
from .classify import classify
from .verdict import Recipient, Verdict

__all__ = ["Recipient", "Verdict", "classify"]
