"""The stack's test clients build from their registries, run, and read what was produced: Debian's kcat and
Kafka's Java console consumer, as :mod:`e2e.stack.clients` wraps them."""

from __future__ import annotations

from confluent_kafka import Producer

from e2e.stack import builds, clients
from tests.kafka_helpers import EDGE_CASES, EDGE_HEADERS


def test_kcat_is_debian_s_build_with_its_librdkafka():
    version = clients.kcat_version()
    packages = clients.kcat_packages()
    assert f"Version {packages['kcat'].split('-')[0]} " in version
    assert f"librdkafka {packages['librdkafka1'].split('-')[0]} " in version


def test_the_console_consumer_is_the_stack_s_kafka_version():
    assert clients.console_version().startswith(builds.KAFKA_VERSION)


def test_the_console_consumer_knows_the_options_the_wrapper_uses():
    shown = clients.console_help()
    for option in ("--partition", "--from-beginning", "--timeout-ms", "--isolation-level", "--formatter-property"):
        assert f"{option} " in shown, option


def test_both_clients_read_null_apart_from_empty(kafka, new_topic):
    topic = new_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    produced = []
    for i, (key, value) in enumerate(EDGE_CASES * 2):
        producer.produce(topic, value, key, partition=i % 2, headers=EDGE_HEADERS if i % 3 else None)
        produced.append((i % 2, key, value))
    assert producer.flush(30) == 0
    expected = sorted(
        (partition, f"key={clients.show(key)}", f"value={clients.show(value)}") for partition, key, value in produced
    )
    for lines in (clients.kcat_consume(kafka.bootstrap, topic), clients.console_consume(kafka.bootstrap, topic)):
        fields = [line.split("\t") for line in lines]
        assert sorted((int(f[0]), f[3], f[4]) for f in fields) == expected
        assert [int(f[1]) for f in fields] == [o for p in (0, 1) for o in range(sum(x[0] == p for x in produced))]
