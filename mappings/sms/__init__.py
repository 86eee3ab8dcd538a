"""SMS texts the customer-service network sends (domain 7): templates.py renders texts.py."""
