"""The crossover consumer (issue in progress): reads history from the archive and crosses into live Kafka.

So far: the pure decisions (:mod:`pyrostore.consumer.decisions`) of which source serves an offset and what
logical offsets mean. The ``confluent_kafka.Consumer``-compatible class builds on them.
"""
