#!/bin/bash
# Creates every LeadFlow topic and its dead-letter topic; safe to rerun (--if-not-exists).
# The list mirrors leadflow_contracts.topics.all_topics(); tests/deploy checks they agree.
# Partitions bound how many consumer replicas can share a topic, and every event is keyed by
# lead id, so the count can only grow later (growing it moves keys between partitions).
set -euo pipefail
BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
PARTITIONS="${TOPIC_PARTITIONS:-6}"
REPLICATION="${TOPIC_REPLICATION_FACTOR:-1}"
PREFIX="${TOPIC_PREFIX:-}"
KAFKA_TOPICS="${KAFKA_TOPICS_CMD:-/opt/kafka/bin/kafka-topics.sh}"
TOPICS="leads.captured leads.enriched leads.scored leads.routed leads.activity leads.touched leads.sla leads.delivered privacy.requests sla.policies"
# Configuration topics whose latest record per key is kept for good (leadflow_contracts.topics.COMPACTED_TOPICS).
COMPACTED_TOPICS="sla.policies"

for attempt in $(seq 1 60); do
  if "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; then break; fi
  [ "$attempt" -eq 60 ] && { echo "broker $BOOTSTRAP not reachable" >&2; exit 1; }
  sleep 2
done

for topic in $TOPICS; do
  for name in "$topic" "$topic.dlq"; do
    config=()
    case " $COMPACTED_TOPICS " in *" $name "*) config=(--config cleanup.policy=compact) ;; esac
    "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
      --topic "${PREFIX}${name}" --partitions "$PARTITIONS" --replication-factor "$REPLICATION" "${config[@]}"
  done
done
echo "topics ready on $BOOTSTRAP: $PARTITIONS partitions each, prefix '${PREFIX}'"
