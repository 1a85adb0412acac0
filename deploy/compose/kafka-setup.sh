#!/usr/bin/env bash
# deploy/compose.yaml's kafka-setup job (apache/kafka image), as the super
# user: waits for the three nodes, gives each service its SCRAM user, then
# creates the topics with deploy/kafka-topics.sh. Safe to run again: users
# are reset to the given passwords, existing topics are left alone. The ACLs
# come next, from `ticketing-admin kafka-acls` (the kafka-access job).
set -euo pipefail

bin=/opt/kafka/bin
bootstrap="${TICKETING_KAFKA_BOOTSTRAP:?}"
nodes=3

umask 077
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
cat >"$config" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${ADMIN_PASSWORD:?}";
PROPERTIES

registered=0
for _ in $(seq 60); do
  registered="$("$bin/kafka-broker-api-versions.sh" --bootstrap-server "$bootstrap" \
    --command-config "$config" 2>/dev/null | grep -c '(id: ' || true)"
  if (( registered >= nodes )); then
    break
  fi
  sleep 2
done
if (( registered < nodes )); then
  echo "only $registered of $nodes Kafka nodes answered" >&2
  exit 1
fi

# One SCRAM-SHA-512 user per service, named as `ticketing-admin kafka-acls`
# expects (ticketing_tools/kafka_access.py).
declare -A passwords=(
  [gateway]="${GATEWAY_PASSWORD:?}"
  [consumer]="${CONSUMER_PASSWORD:?}"
  [notifier]="${NOTIFIER_PASSWORD:?}"
  [payment]="${PAYMENT_PASSWORD:?}"
)
for user in "${!passwords[@]}"; do
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$config" \
    --alter --entity-type users --entity-name "$user" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=${passwords[$user]}]"
done

KAFKA_HOME=/opt/kafka KAFKA_COMMAND_CONFIG="$config" bash /opt/ticketing/kafka-topics.sh
