"""The WAP endpoint (docs/wap.md): XML over HTTP for the WAP business hall, request/reply on the bus."""
