{{/* Release-scoped name: "<release>-leadflow", or the release name when it already says leadflow. */}}
{{- define "leadflow.fullname" -}}
{{- if contains "leadflow" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-leadflow" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "leadflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: leadflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector of one service's pods (its Deployment and its migration Job): (dict "root" $ "name" "capture"). */}}
{{- define "leadflow.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "leadflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "leadflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leadflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "leadflow.secretName" -}}
{{- default (printf "%s-secrets" (include "leadflow.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* One service's values: defaults merged under services.<name>. */}}
{{- define "leadflow.service" -}}
{{- $svc := index .root.Values.services .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $svc)) -}}
{{- end -}}

{{- define "leadflow.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{- define "leadflow.kafkaTls" -}}
{{- if or (eq .Values.kafka.securityProtocol "SSL") (eq .Values.kafka.securityProtocol "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{/*
Environment of one service's containers (serve and migrate alike):
(dict "root" $ "name" "capture" "svc" <merged service values>).
*/}}
{{- define "leadflow.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $p := upper .name -}}
{{- $svc := .svc -}}
- name: LEADFLOW_SERVICE
  value: {{ .name }}
- name: {{ $p }}_ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: {{ $p }}_HOST
  value: "0.0.0.0"
- name: {{ $p }}_PORT
  value: {{ $svc.port | quote }}
- name: {{ $p }}_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: {{ $p }}_TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: {{ $p }}_KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if include "leadflow.kafkaSasl" $root }}
- name: {{ $p }}_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
{{- if $v.kafka.sasl.usernameKey }}
- name: {{ $p }}_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $v.kafka.sasl.existingSecret }}
      key: {{ $v.kafka.sasl.usernameKey }}
{{- else }}
- name: {{ $p }}_KAFKA_SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
{{- end }}
- name: {{ $p }}_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.kafka.sasl.existingSecret }}
      key: {{ $v.kafka.sasl.passwordKey }}
{{- end }}
{{- if $v.kafka.tls.caSecret }}
- name: {{ $p }}_KAFKA_SSL_CAFILE
  value: /etc/leadflow/kafka-ca/{{ $v.kafka.tls.caKey }}
{{- end }}
{{- if $v.postgresql.caSecret }}
- name: PGSSLROOTCERT
  value: /etc/leadflow/postgresql-ca/{{ $v.postgresql.caKey }}
{{- end }}
{{- include "leadflow.databaseEnv" (dict "root" $root "prefix" $p "database" $svc.database) }}
{{- $database := $svc.database | default dict }}
{{- if not (or $database.urlSecret $database.passwordSecret) }}
{{ include "leadflow.secretEnv" (dict "root" $root "key" (printf "%s_DATABASE_URL" $p)) }}
{{- end }}
{{- /* Optional here: a service's settings say which of them production requires, and why. */}}
{{- range $key := index (include "leadflow.serviceSecretKeys" $root | fromYaml) .name }}
{{ include "leadflow.secretEnv" (dict "root" $root "key" (printf "%s_%s" $p $key) "optional" true) }}
{{- end }}
{{- if eq .name "capture" }}
- name: CAPTURE_PUBLIC_BASE_URL
  value: {{ $v.capture.publicBaseUrl | quote }}
- name: CAPTURE_TRUSTED_PROXIES
  value: {{ toJson $v.capture.trustedProxies | quote }}
- name: CAPTURE_PRIVACY_EXPORT_URLS
  value: {{ include "leadflow.privacyExportUrls" $root | quote }}
{{- end }}
{{- range $key, $value := $svc.settings }}
- name: {{ printf "%s_%s" $p (upper $key) }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
<PREFIX>_DATABASE_URL from database.urlSecret, or composed from database.passwordSecret and the server
values; nothing when neither is set (the app secret gives it): (dict "root" $ "prefix" "CAPTURE" "database" ...).
*/}}
{{- define "leadflow.databaseEnv" -}}
{{- $v := .root.Values -}}
{{- $p := .prefix -}}
{{- with .database }}
{{- if .urlSecret }}
- name: {{ $p }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .urlSecret.name }}
      key: {{ .urlSecret.key }}
{{- else if .passwordSecret }}
# Referenced as $(...) below: the password must be URL-safe (or percent-encoded in its Secret).
- name: {{ $p }}_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .passwordSecret.name }}
      key: {{ .passwordSecret.key }}
- name: {{ $p }}_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(%s_DATABASE_PASSWORD)@%s:%v/%s?ssl=%s" .username $p $v.postgresql.host $v.postgresql.port .name $v.postgresql.sslMode | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The console's values: defaults merged under console. */}}
{{- define "leadflow.console" -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.defaults) (deepCopy .Values.console)) -}}
{{- end -}}

{{/* A key of the app secret as one variable; optional ones are left unset when the Secret lacks them. */}}
{{- define "leadflow.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "leadflow.secretName" .root }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/*
Environment of the console's containers (serve, provision-keys, migrate): (dict "root" $ "console" <merged
values>). Only CONSOLE_ keys of the app secret, one by one: never the services' admin keys.
*/}}
{{- define "leadflow.consoleEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $c := .console -}}
- name: LEADFLOW_SERVICE
  value: console
- name: CONSOLE_ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: CONSOLE_HOST
  value: "0.0.0.0"
- name: CONSOLE_PORT
  value: {{ $c.port | quote }}
{{- range $name, $svc := $v.services }}
- name: CONSOLE_{{ upper $name }}_URL
  value: {{ printf "http://%s-%s:%v" (include "leadflow.fullname" $root) $name $svc.port | quote }}
{{- end }}
- name: CONSOLE_CAPTURE_PUBLIC_URL
  value: {{ $v.capture.publicBaseUrl | quote }}
{{- if $v.postgresql.caSecret }}
- name: PGSSLROOTCERT
  value: /etc/leadflow/postgresql-ca/{{ $v.postgresql.caKey }}
{{- end }}
{{- if or $c.database.urlSecret $c.database.passwordSecret }}
{{- include "leadflow.databaseEnv" (dict "root" $root "prefix" "CONSOLE" "database" $c.database) }}
{{- else }}
{{ include "leadflow.secretEnv" (dict "root" $root "key" "CONSOLE_DATABASE_URL") }}
{{- end }}
{{- /* Production refuses to start without the first two (the console's settings say why). */}}
{{- range $key := list "CONSOLE_SECRET_KEY" "CONSOLE_ENCRYPTION_KEYS" }}
{{ include "leadflow.secretEnv" (dict "root" $root "key" $key "optional" true) }}
{{- end }}
{{- /* A key given here wins over the one provision-keys keeps. */}}
{{- range $name, $_ := $v.services }}
{{ include "leadflow.secretEnv" (dict "root" $root "key" (printf "CONSOLE_%s_API_KEY" (upper $name)) "optional" true) }}
{{- end }}
{{- range $key, $value := $c.settings }}
- name: {{ printf "CONSOLE_%s" (upper $key) }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Where capture gathers a person's data from the other four services (privacy export). */}}
{{- define "leadflow.privacyExportUrls" -}}
{{- $urls := dict -}}
{{- range $name := list "enrichment" "scoring" "routing" "sla" -}}
{{- $_ := set $urls $name (printf "http://%s-%s:%v" (include "leadflow.fullname" $) $name (index $.Values.services $name).port) -}}
{{- end -}}
{{- toJson $urls -}}
{{- end -}}

{{/*
The keys of the app secret each service reads besides <PREFIX>_DATABASE_URL, by setting name: one by one, never
the whole Secret, so a service's pods hold no other service's database password, admin key or encryption keys.
tests/deploy/test_helm_chart.py checks these against the secret settings of each service.
*/}}
{{- define "leadflow.serviceSecretKeys" -}}
capture: [ADMIN_API_KEY, PERSON_KEY_SECRET]
enrichment: [ADMIN_API_KEY, PROVIDER_AUTH_VALUE]
scoring: [ADMIN_API_KEY]
routing: [ADMIN_API_KEY, WEBHOOK_ENCRYPTION_KEYS, DEMO_WEBHOOK_SECRET, NOTIFY_SLACK_WEBHOOK_URL, SMTP_PASSWORD]
sla: [ADMIN_API_KEY, WEBHOOK_ENCRYPTION_KEYS]
{{- end -}}

{{/* CA bundles of Kafka and PostgreSQL, mounted read-only when configured. */}}
{{- define "leadflow.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/leadflow/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.postgresql.caSecret }}
- name: postgresql-ca
  mountPath: /etc/leadflow/postgresql-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "leadflow.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
{{- end }}
{{- if .Values.postgresql.caSecret }}
- name: postgresql-ca
  secret:
    secretName: {{ .Values.postgresql.caSecret }}
{{- end }}
{{- end -}}

{{- define "leadflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "leadflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Non-empty when an autoscaler owns the service's replicas: the HPA for capture, KEDA for consumers. */}}
{{- define "leadflow.autoscaled" -}}
{{- if .svc.autoscaling.enabled -}}
{{- if eq .name "capture" }}true{{ else if .root.Values.keda.enabled }}true{{ end -}}
{{- end -}}
{{- end -}}

{{- define "leadflow.kedaSasl" -}}
{{- get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") . -}}
{{- end -}}

{{/* leadflow_contracts.topics.EVENT_TOPICS (tests/deploy/test_helm_chart.py keeps them equal). */}}
{{- define "leadflow.eventTopics" -}}
leads.captured leads.enriched leads.scored leads.routed leads.activity leads.touched leads.sla leads.delivered privacy.requests sla.policies
{{- end -}}

{{/* leadflow_contracts.topics.COMPACTED_TOPICS: the latest record of each key is kept for good. */}}
{{- define "leadflow.compactedTopics" -}}
sla.policies
{{- end -}}

{{/* Where a workload's pods go: spread over nodes and zones, node selector, tolerations:
(dict "svc" <merged values> "selector" <selector labels>). */}}
{{- define "leadflow.placement" -}}
topologySpreadConstraints:
  {{- range .svc.topologySpread }}
  - maxSkew: {{ .maxSkew }}
    topologyKey: {{ .topologyKey }}
    whenUnsatisfiable: {{ .whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- $.selector | nindent 8 }}
  {{- end }}
{{- with .svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Probes of a serving container on its "http" port, and the pause before it stops listening. */}}
{{- define "leadflow.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: 30
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
lifecycle:
  preStop:
    # Let the Service drop this pod from its endpoints before the app stops listening.
    exec:
      command: ["sleep", "5"]
{{- end -}}
