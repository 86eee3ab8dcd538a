"""The SMPP adapter: SMS to and from the SMS centre (issue 7; docs/sms.md sections 8 and 9).

One concept per module:

    config.py    config/smpp.yaml as one pydantic model (SMSCs, failover, window, TPS, MO rules)
    link.py      one SMSC connection: socket, TCP_NODELAY, bind, PDU bytes (smpplib)
    engine.py    the one thread that owns every link: jobs, dispatch, receipts, MO, effects in order
    ledger.py    the durable state in the hub's store (submits, parts, waiting receipts, outbox)
    bus.py       RabbitMQ: consume adapter.smpp, publish with confirms, ack when told
    adapter.py   wiring, health(), the health file
    commands.py  `hub smpp run | status | receipts`

I/O only: every rule (encoding, splitting, receipts, correlation, the window, the session,
MO routing, templates) is in protocols/smpp, protocols/sms and mappings/sms.
"""
