{{/* Chart name, truncated to the 63 characters a label value holds. */}}
{{- define "mcpgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart's unless it already contains it. */}}
{{- define "mcpgw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mcpgw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcpgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mcpgw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mcpgw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mcpgw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcpgw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mcpgw.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the chart mounts each Secret; the config points at these paths. */}}
{{- define "mcpgw.secretDir" -}}/etc/mcpgw/secrets/{{ . }}{{- end }}
{{- define "mcpgw.dataDir" -}}/var/lib/mcpgw{{- end }}
{{- define "mcpgw.configPath" -}}/etc/mcpgw/config/mcpgw.yaml{{- end }}

{{/*
mcpgw.multiReplica is "true" when more than one pod may run at once: they
must then share a PostgreSQL store (agents, backends, audit, admin writes).
*/}}
{{- define "mcpgw.multiReplica" -}}
{{- if or (gt (int .Values.replicaCount) 1) (and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) 1)) }}true{{ end }}
{{- end }}

{{/*
mcpgw.validate fails the render with a message naming the value to set;
every template includes it, so no partial install happens.
*/}}
{{- define "mcpgw.validate" -}}
{{- $c := .Values.config | default dict }}
{{- $server := get $c "server" | default dict }}
{{- range $k := list "listen" "metrics_listen" "session_key" "session_key_file" }}
{{- if hasKey $server $k }}
{{- fail (printf "config.server.%s is set by the chart: remove it (ports: containerPorts; the session key: secrets.sessionKey)" $k) }}
{{- end }}
{{- end }}
{{- $policy := get $c "policy" | default dict }}
{{- if hasKey $policy "verification_key" }}
{{- fail "config.policy.verification_key is set by the chart: give the key's Secret in secrets.bundleVerificationKey" }}
{{- end }}
{{- $store := get $c "store" | default dict }}
{{- if hasPrefix "postgres" (toString (get $store "dsn")) }}
{{- fail "config.store.dsn must not name PostgreSQL inline (a DSN holds a password): put it in a Secret and name that in secrets.postgresDSN.existingSecret" }}
{{- end }}
{{- if not .Values.secrets.sessionKey.existingSecret }}
{{- fail "secrets.sessionKey.existingSecret is required: a Secret with 32 random bytes (head -c32 /dev/urandom) that every replica seals sessions with" }}
{{- end }}
{{- if and (not .Values.secrets.bundleVerificationKey.existingSecret) (not (get $policy "allow_unsigned")) }}
{{- fail "secrets.bundleVerificationKey.existingSecret is required: the Secret holding the public key that verifies policy bundles (or config.policy.allow_unsigned: true, development only)" }}
{{- end }}
{{- if and (include "mcpgw.multiReplica" .) (not .Values.secrets.postgresDSN.existingSecret) }}
{{- fail "secrets.postgresDSN.existingSecret is required when replicaCount > 1 or autoscaling is enabled: replicas must share one PostgreSQL store (agents, backends, audit). Create a Secret with the DSN and name it there." }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- end }}

{{/*
mcpgw.config is the configuration file: the user's config with the keys the
chart owns (listeners, key files, the data directory) set over it.
*/}}
{{- define "mcpgw.config" -}}
{{- $c := deepCopy (.Values.config | default dict) }}
{{- $server := get $c "server" | default dict }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.http)) }}
{{- $_ := set $server "metrics_listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.metrics)) }}
{{- $_ := set $server "session_key_file" (printf "%s/%s" (include "mcpgw.secretDir" "session-key") .Values.secrets.sessionKey.key) }}
{{- $_ := set $c "server" $server }}
{{- $policy := get $c "policy" | default dict }}
{{- if .Values.secrets.bundleVerificationKey.existingSecret }}
{{- $_ := set $policy "verification_key" (printf "%s/%s" (include "mcpgw.secretDir" "bundle-verification-key") .Values.secrets.bundleVerificationKey.key) }}
{{- end }}
{{- if not (hasKey $policy "persist_dir") }}
{{- $_ := set $policy "persist_dir" (printf "%s/bundles" (include "mcpgw.dataDir" .)) }}
{{- end }}
{{- $_ := set $c "policy" $policy }}
{{- $store := get $c "store" | default dict }}
{{- if and (not .Values.secrets.postgresDSN.existingSecret) (not (get $store "dsn")) }}
{{- $_ := set $store "dsn" (printf "file:%s/mcpgw.db" (include "mcpgw.dataDir" .)) }}
{{- $_ := set $c "store" $store }}
{{- end }}
{{- toYaml $c }}
{{- end }}
