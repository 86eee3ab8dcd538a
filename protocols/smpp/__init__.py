"""SMPP 3.4 with an SMS centre (SMSC): the pure layer under adapters/smpp (issue 7).

One concept per module:

    codes.py     command names and ids, command_status values (SMPP 3.4 section 5.1)
    text.py      GSM 7-bit / UCS2 choice, splitting with 16-bit concatenation UDH, MO decoding
                 and reassembly
    receipts.py  delivery receipts (TLVs or Appendix B text), message-id normalisation,
                 ReceiptCorrelator (receipt -> business message, in either order)
    window.py    command_status classification, sequence numbers, the send window,
                 token bucket and back-off
    session.py   the ESME transceiver session as a state machine with one transition table

Nothing here opens a socket, reads the clock or the environment: time comes in as an
argument. PDU encoding is smpplib's job in the adapter. docs/sms.md tells the whole story.
"""
