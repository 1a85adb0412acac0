#!/usr/bin/env bash
# Entry point of deploy/compose.yaml's Kafka nodes (apache/kafka image). The
# super user `admin` logs in with PLAIN: the nodes use it among themselves,
# and the setup jobs to create the services' SCRAM users and their ACLs. Its
# password reaches the node's configuration from BROKER_ADMIN_PASSWORD here,
# since the image builds server.properties from KAFKA_* variables; then the
# image's own start (format the log directory once, run the node).
set -euo pipefail

password="${BROKER_ADMIN_PASSWORD:?}"
unset BROKER_ADMIN_PASSWORD
login="org.apache.kafka.common.security.plain.PlainLoginModule required"
login+=" username=\"admin\" password=\"$password\" user_admin=\"$password\";"
export KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG="$login"
export KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG="$login"
exec /etc/kafka/docker/run
