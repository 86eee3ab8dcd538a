"""The SOAP adapter: province CRMs reached by SOAP (delivery.py) and legacy nodes submitting
by SOAP (intake.py), configured by config/soap.yaml (config.py). docs/soap.md."""
