"""SMS messages on the bus (namespace urn:cs-hub:sms:1, sms.xsd): sms.send, sms.status, sms.mo.

The SMPP conversation with the SMS centre is protocols/smpp; this package is only the XML
the nodes and the hub exchange about SMS (docs/sms.md, section 9).
"""
