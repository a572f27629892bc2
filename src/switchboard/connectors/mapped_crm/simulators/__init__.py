"""Simulators of two CRMs the declarative connector describes by configuration alone: ACME
(:mod:`.acme`, page-numbered, flat fields) and People (:mod:`.people`, cursor pages, nested
records)."""
