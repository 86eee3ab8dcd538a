"""Report and document files between HQ and the provinces, with success marks (seed 001, 5.1).

The pure protocol layer of file transfer, one concept per module:

    transfer.py   the transfer-with-marks conversation as a state machine (sender and receiver)
    marker.py     the mark files beside a data file (NAME.ok, NAME.CODE.ack), part and version names
    naming.py     report naming rules, periods and deadlines; which reports are late
    layout.py     the folder layout on the SFTP server
    events.py     the bus events (marks, late-report and transfer alarms, transfer jobs)
    wire.py       those events as XML (files.xsd, namespace urn:cs-hub:files:1)

Nothing here does I/O, reads the clock or the environment; adapters/sftp does the moving
and docs/sftp.md describes the exchange for operators and node vendors.
"""
