"""SOAP 1.1 as the hub speaks it: the two WSDLs, envelopes, faults with reason codes.

crm.wsdl is the CRM-side service the hub calls (Deliver); intake.wsdl is the hub's own
service for legacy nodes (Submit). envelope.py builds and parses envelopes and faults,
messages.py the operations' bodies. Pure code: no sockets, no clocks, no logging.
"""
