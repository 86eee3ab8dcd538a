"""The queue console: the web pages, JSON API, metrics and CLI helpers operators use all day.

Owns: `create_app` (FastAPI: pages, /api/*, /metrics, /openapi.json), access control
(access.py), the dead-letter desk (deadletters.py: browse, replay, discard), the audit
table (audit.py), the read models of the pages (views.py) and the zh/en texts (i18n.py).
Must not: process messages or decide about them (hub/pipeline.py does); change broker
topology; import adapters (the layer contract).
"""
