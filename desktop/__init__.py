"""Tokenglass: a local chat app that shows how a language model answers."""

__version__ = "0.1.0"
