#!/usr/bin/env bash
# The broker of docker-compose.yml (apache/kafka image): single-node KRaft, clients authenticated with
# SASL/SCRAM-SHA-512 (one principal per service, credentials stored in the KRaft metadata at the first
# format), the controller listener with PLAIN for the admin alone, and StandardAuthorizer denying what
# no ACL allows (the ACLs are made by the kafka-setup job from the topic catalogue).
#
# Reads /etc/adledger/kafka-secrets/<principal>.password (made by `docker compose run --rm init`).
set -euo pipefail

secrets=/etc/adledger/kafka-secrets
data=/var/lib/kafka/data
conf=/tmp/adledger-server.properties
admin_conf=/tmp/adledger-admin.properties

[[ -s "${secrets}/admin.password" ]] || {
  echo "ERROR: ${secrets}/admin.password is missing: run the one-time init first (docker compose run --rm init)" >&2
  exit 1
}
admin="$(<"${secrets}/admin.password")"
umask 077

cat >"${conf}" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=CLIENT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093,HOST://0.0.0.0:19092
advertised.listeners=CLIENT://kafka:9092,HOST://127.0.0.1:19092
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin}";
listener.name.host.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.host.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${admin}" user_admin="${admin}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=${data}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF

cat >"${admin_conf}" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin}";
EOF

if [[ ! -f "${data}/meta.properties" ]]; then
  scram=()
  for file in "${secrets}"/*.password; do
    principal="$(basename "${file}" .password)"
    scram+=(--add-scram "SCRAM-SHA-512=[name=${principal},password=$(<"${file}")]")
  done
  /opt/kafka/bin/kafka-storage.sh format -t "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" -c "${conf}" "${scram[@]}"
fi

exec /opt/kafka/bin/kafka-server-start.sh "${conf}"
