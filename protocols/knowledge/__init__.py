"""Nationwide knowledge sharing (全网知识共享), seed 003 sections 2.3.1 and 3.1.1.

The pure protocol layer, one concept per module:

    models.py       canonical pydantic models of the eleven messages, Chinese field names
    knowledge.xsd   the XML wire contract, namespace urn:cs-hub:knowledge:1
    wire.py         XSD validation and XML tree <-> model (bytes via protocols.xmlwire)
    rules.py        business validation, each refusal with a reason code; UTC normalisation
    lifecycle.py    an item at HQ: submit, review, return, publish, revoke (one table)
    fanout.py       one approved version fanned out to its recipients, receipts tracked
    feedback.py     a province's feedback: reply, forward to the owner, update (one table)
    versions.py     version sync: per-recipient verdicts, HQ's catalog, the sync difference
    structure.py    the knowledge structure (category tree) and its mounting
    machine.py      the Event base and the transition-table lookup (shared with announcements)
    xmlbinding.py   model <-> XML mapping rule (shared with announcements)

Single-field checks are protocols/fieldrules.py (shared with announcements and orders).
Nothing here does I/O, reads the clock or the environment; docs/knowledge.md describes the wire.
"""
