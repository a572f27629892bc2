"""Connectors: one package per provider, each a thin typed client plus pure mapping functions."""
