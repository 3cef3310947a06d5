"""Example programs: the course exercises on minikafka."""
