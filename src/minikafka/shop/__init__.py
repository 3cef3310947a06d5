"""The shop: services that talk only through events on any Kafka-compatible broker.

`api` takes orders over HTTP, `orders` moves each order through its life, `inventory` reserves and
releases stock, `notifications` tells the customer about every step; `runtime` is the consumer loop
they share (dedupe, outbox, dead letters), `events` the contract between them.
"""
