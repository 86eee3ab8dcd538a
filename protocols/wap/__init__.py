"""WAP business hall: XML of its queries, answers and transactions (wap.xsd), pure functions."""
