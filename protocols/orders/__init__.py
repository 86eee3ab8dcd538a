"""Electronic dispatch orders and return orders (电子派单 / 电子回单), seed 001 sections 5.1 and 5.4.

The pure protocol layer, one concept per module:

    models.py       canonical pydantic models of the five messages, Chinese field names
    order.xsd       the XML wire contract, namespace urn:cs-hub:order:1
    wire.py         XSD validation and XML tree <-> model (bytes via protocols.xmlwire)
    rules.py        business validation, each refusal with a reason code; UTC normalisation
    categories.py   the complaint category code list (投诉类别), content passed in
    segments.py     number segment (号段) -> home province, content passed in
    transaction.py  the six-step transaction as a state machine, timers and alarms

Nothing here does I/O, reads the clock or the environment; docs/orders.md describes the wire.
"""
