"""The Kafka wire protocol, sans I/O: request frames in, response frames out."""
