#!/usr/bin/env bash
# Creates the ticketing suite's four topics (requests, results, dead letters,
# payment saga commands)
# on an Apache Kafka cluster.
#
#   KAFKA_HOME=/opt/kafka TICKETING_KAFKA_BOOTSTRAP=kafka-1:9092 deploy/kafka-topics.sh
#
# Safe to run again: existing topics are left as they are (their partition
# count is never changed here; see deploy/README.md before adding partitions).
#
# Settings (environment):
#   TICKETING_KAFKA_BOOTSTRAP          bootstrap servers   (required)
#   TICKETING_KAFKA_REQUESTS_TOPIC     requests topic      (ticketing.reservation-requests)
#   TICKETING_KAFKA_RESULTS_TOPIC      results topic       (ticketing.reservation-results)
#   TICKETING_KAFKA_DEAD_LETTER_TOPIC  dead-letter topic   (ticketing.reservation-requests.dlq)
#   TICKETING_KAFKA_PAYMENTS_TOPIC     saga commands       (ticketing.payments)
#   PARTITIONS                 partitions of each topic  ($TICKETING_KAFKA_PARTITIONS, else 6)
#   REPLICATION_FACTOR         replicas of each partition
#                              ($TICKETING_KAFKA_REPLICATION_FACTOR, else 3)
#   MIN_INSYNC_REPLICAS        replicas an acks=all write needs (2)
#   KAFKA_TOPICS               path of kafka-topics.sh        ($KAFKA_HOME/bin/kafka-topics.sh,
#                                                              else kafka-topics.sh on PATH,
#                                                              else Kafka's TopicCommand from the
#                                                              jars `make setup` assembled)
#   KAFKA_COMMAND_CONFIG       client properties file (TLS/SASL), optional
set -euo pipefail

bootstrap="${TICKETING_KAFKA_BOOTSTRAP:?set TICKETING_KAFKA_BOOTSTRAP (host:port,...)}"
requests_topic="${TICKETING_KAFKA_REQUESTS_TOPIC:-ticketing.reservation-requests}"
results_topic="${TICKETING_KAFKA_RESULTS_TOPIC:-ticketing.reservation-results}"
dead_letter_topic="${TICKETING_KAFKA_DEAD_LETTER_TOPIC:-ticketing.reservation-requests.dlq}"
payments_topic="${TICKETING_KAFKA_PAYMENTS_TOPIC:-ticketing.payments}"
partitions="${PARTITIONS:-${TICKETING_KAFKA_PARTITIONS:-6}}"
replication="${REPLICATION_FACTOR:-${TICKETING_KAFKA_REPLICATION_FACTOR:-3}}"
min_isr="${MIN_INSYNC_REPLICAS:-2}"

libs="$(cd "$(dirname "$0")/.." && pwd)/.tools/kafka/libs"
if [[ -n "${KAFKA_TOPICS:-}" ]]; then
  kafka_topics=("$KAFKA_TOPICS")
elif [[ -n "${KAFKA_HOME:-}" ]]; then
  kafka_topics=("$KAFKA_HOME/bin/kafka-topics.sh")
elif command -v kafka-topics.sh >/dev/null; then
  kafka_topics=("$(command -v kafka-topics.sh)")
elif compgen -G "$libs/kafka-tools-*.jar" >/dev/null; then
  java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  kafka_topics=("$java" -cp "$libs/*" org.apache.kafka.tools.TopicCommand)
else
  echo "kafka-topics.sh not found: set KAFKA_HOME or KAFKA_TOPICS, or run make setup" >&2
  exit 1
fi
if ! command -v "${kafka_topics[0]}" >/dev/null; then
  echo "${kafka_topics[0]} is not executable" >&2
  exit 1
fi

for value in "$partitions" "$replication" "$min_isr"; do
  if ! [[ "$value" =~ ^[1-9][0-9]*$ ]]; then
    echo "PARTITIONS, REPLICATION_FACTOR and MIN_INSYNC_REPLICAS must be positive integers" >&2
    exit 1
  fi
done
if (( min_isr > replication )); then
  echo "MIN_INSYNC_REPLICAS ($min_isr) must not exceed REPLICATION_FACTOR ($replication)" >&2
  exit 1
fi

common=(--bootstrap-server "$bootstrap")
if [[ -n "${KAFKA_COMMAND_CONFIG:-}" ]]; then
  common+=(--command-config "$KAFKA_COMMAND_CONFIG")
fi

for topic in "$requests_topic" "$results_topic" "$dead_letter_topic" "$payments_topic"; do
  echo "creating $topic: $partitions partitions, replication factor $replication," \
       "min.insync.replicas=$min_isr"
  "${kafka_topics[@]}" "${common[@]}" --create --if-not-exists \
    --topic "$topic" \
    --partitions "$partitions" \
    --replication-factor "$replication" \
    --config min.insync.replicas="$min_isr"
done

for topic in "$requests_topic" "$results_topic" "$dead_letter_topic" "$payments_topic"; do
  "${kafka_topics[@]}" "${common[@]}" --describe --topic "$topic"
done
