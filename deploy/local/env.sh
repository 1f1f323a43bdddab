# shellcheck shell=bash
# Settings of the local adledger stack (Kafka + PostgreSQL).
#
# This file is sourced by deploy/local/stack, deploy/local/kafka and deploy/local/kafka-fetch, and it may
# also be sourced by a developer's shell or by the Makefile. It therefore only sets variables (no functions,
# no `set` options) and never overrides a value that the caller already chose.

# All runtime state (jars, data, logs, pid files) lives outside the repository so that a `git clean` or a
# fresh clone never loses or ships it.
: "${ADLEDGER_HOME:=${HOME:?HOME must be set}/.cache/adledger}"

# The ports are unusual on purpose so that the stack does not collide with a system Kafka or PostgreSQL.
: "${ADLEDGER_KAFKA_PORT:=19092}"
: "${ADLEDGER_KAFKA_CONTROLLER_PORT:=19093}"
: "${ADLEDGER_PG_PORT:=15432}"

# Seconds that `stack start` waits for both components to become healthy before giving up.
: "${ADLEDGER_STACK_TIMEOUT:=90}"

# Maven Central by default; a mirror can be substituted without editing any script.
: "${ADLEDGER_MAVEN_REPO:=https://repo.maven.apache.org/maven2}"

# The addresses the local stack actually serves. They are kept separately from the two exported URLs below
# because a caller may point those at another environment, while health checks must probe the local stack.
ADLEDGER_LOCAL_DATABASE_URL="postgresql://adledger:adledger@127.0.0.1:${ADLEDGER_PG_PORT}/adledger"
ADLEDGER_LOCAL_KAFKA_BOOTSTRAP="127.0.0.1:${ADLEDGER_KAFKA_PORT}"

: "${ADLEDGER_DATABASE_URL:=${ADLEDGER_LOCAL_DATABASE_URL}}"
: "${ADLEDGER_KAFKA_BOOTSTRAP_SERVERS:=${ADLEDGER_LOCAL_KAFKA_BOOTSTRAP}}"

export ADLEDGER_HOME ADLEDGER_KAFKA_PORT ADLEDGER_KAFKA_CONTROLLER_PORT ADLEDGER_PG_PORT \
  ADLEDGER_STACK_TIMEOUT ADLEDGER_MAVEN_REPO ADLEDGER_LOCAL_DATABASE_URL ADLEDGER_LOCAL_KAFKA_BOOTSTRAP \
  ADLEDGER_DATABASE_URL ADLEDGER_KAFKA_BOOTSTRAP_SERVERS
