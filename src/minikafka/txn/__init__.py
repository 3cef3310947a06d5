"""Transactions without I/O or network of their own: the coordinator's state machine
(`coordinator.py`) and its durable log (`log.py`), shared by the broker and the embedded
producer."""
