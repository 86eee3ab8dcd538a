"""Nationwide announcement sharing (全网公告共享), seed 003 section 2.3.2.

The pure protocol layer, one concept per module:

    models.py           canonical pydantic models of the seven messages, Chinese field names
    announcement.xsd    the XML wire contract, namespace urn:cs-hub:announcement:1
    wire.py             XSD validation and XML tree <-> model (bytes via protocols.xmlwire)
    rules.py            business validation, each refusal with a reason code; scope expansion
    transaction.py      submit, return, publish, close; replies, their return and acceptance;
                        reply deadlines as timer data (one table per conversation)

It reuses the seed-003 plumbing of protocols.knowledge (xmlbinding, machine) and protocols/fieldrules.py.
Nothing here does I/O, reads the clock or the environment; docs/knowledge.md (part B)
describes the wire.
"""
