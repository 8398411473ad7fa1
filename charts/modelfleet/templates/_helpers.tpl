{{/*
Names are fixed, not derived from the release: the hub binds the operator's
workload role in tenant namespaces to modelfleet-system/modelfleet-operator,
the hub's kubeconfig for a member cluster is a token of
modelfleet-system/modelfleet-hub, and both ClusterRoles are named in the
product's code (core/src/contract/tenancy.rs). One release per cluster.
*/}}
{{- define "modelfleet.namespace" -}}modelfleet-system{{- end -}}

{{/* Refuses what cannot work, with the reason. Included by every template. */}}
{{- define "modelfleet.validate" -}}
{{- if ne .Release.Namespace (include "modelfleet.namespace" .) -}}
{{- fail (printf "install modelfleet into the namespace modelfleet-system (helm install -n modelfleet-system), not %q: the hub grants the operator its rights in tenant namespaces as modelfleet-system/modelfleet-operator" .Release.Namespace) -}}
{{- end -}}
{{- if eq .Values.mode "hub" -}}
{{- if and (not .Values.hub.database.url) (not .Values.hub.database.existingSecret) -}}
{{- fail "hub mode needs the hub's PostgreSQL: set hub.database.url (postgres://USER:PASSWORD@HOST:5432/DB) or hub.database.existingSecret (a Secret holding it); the chart bundles no database" -}}
{{- end -}}
{{- if and .Values.hub.database.url .Values.hub.database.existingSecret -}}
{{- fail "set hub.database.url or hub.database.existingSecret, not both" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.mode "member" -}}
{{- if not .Values.operator.enabled -}}
{{- fail "member mode runs the operator: operator.enabled must be true" -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- fail "gateway.enabled needs hub mode: the gateway runs beside the hubs, on their database; install it with the hub" -}}
{{- end -}}
{{- if not .Values.operator.cluster -}}
{{- fail "member mode needs operator.cluster: this cluster's name as registered with the hub" -}}
{{- end -}}
{{- if and (not .Values.operator.admissionKey.value) (not .Values.operator.admissionKey.existingSecret) -}}
{{- fail "member mode needs the cluster's admission key: set operator.admissionKey.value (`modelfleet admission-key --cluster NAME` prints it) or operator.admissionKey.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.operator.admissionKey.value .Values.operator.admissionKey.existingSecret -}}
{{- fail "set operator.admissionKey.value or operator.admissionKey.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.hub.ingress.enabled (not .Values.hub.ingress.host) -}}
{{- fail "hub.ingress.enabled needs hub.ingress.host" -}}
{{- end -}}
{{- if and .Values.gateway.enabled .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- fail (printf "gateway.autoscaling.minReplicas (%v) is above gateway.autoscaling.maxReplicas (%v): raise maxReplicas or lower minReplicas" .Values.gateway.autoscaling.minReplicas .Values.gateway.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and .Values.hub.httpRoute.enabled (not .Values.hub.httpRoute.parentRefs) -}}
{{- fail "hub.httpRoute.enabled needs hub.httpRoute.parentRefs: the Gateway (and its HTTPS listener) to attach to" -}}
{{- end -}}
{{- end -}}

{{- define "modelfleet.hubEnabled" -}}{{ if eq .Values.mode "hub" }}true{{ end }}{{- end -}}

{{/* `modelfleet gateway` runs beside the hubs, on their database: hub mode only. */}}
{{- define "modelfleet.gatewayEnabled" -}}{{ if and (eq .Values.mode "hub") .Values.gateway.enabled }}true{{ end }}{{- end -}}

{{- define "modelfleet.memberAccessEnabled" -}}
{{- if kindIs "bool" .Values.memberAccess.enabled -}}
{{ if .Values.memberAccess.enabled }}true{{ end }}
{{- else if eq .Values.mode "member" -}}true
{{- end -}}
{{- end -}}

{{- define "modelfleet.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The labels every object carries; call with (dict "ctx" $ "name" "modelfleet-api" "component" "hub"). */}}
{{- define "modelfleet.labels" -}}
{{ include "modelfleet.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: modelfleet
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "modelfleet.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "modelfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{- define "modelfleet.image" -}}
{{- $tag := .Values.image.tag | default (printf "v%s" .Chart.AppVersion) -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* Restricted Pod Security: the image's non-root user, no privilege, no capabilities. */}}
{{- define "modelfleet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
# Mounted Secrets are root's files; their group becomes this one, so the
# process can read them (mode 0440) and no other user can.
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "modelfleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The secret key's Secret: the user's, or the one the chart keeps. */}}
{{- define "modelfleet.secretKeySecret" -}}
{{ .Values.hub.secretKey.existingSecret | default "modelfleet-api-secret-key" }}
{{- end -}}
{{- define "modelfleet.databaseSecret" -}}
{{ .Values.hub.database.existingSecret | default "modelfleet-api-database" }}
{{- end -}}
{{- define "modelfleet.adminSecret" -}}
{{ .Values.hub.initialAdmin.existingSecret | default "modelfleet-api-admin" }}
{{- end -}}
{{- define "modelfleet.admissionKeySecret" -}}
{{ .Values.operator.admissionKey.existingSecret | default "modelfleet-operator-admission-key" }}
{{- end -}}

{{/*
A value kept across upgrades: the one already in the Secret `name` under
`key` (base64, as stored), else `generated` encoded. `lookup` answers
nothing under `helm template` and --dry-run, so those show a fresh value.
*/}}
{{- define "modelfleet.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{ index $existing.data .key }}
{{- else -}}
{{ .generated | b64enc }}
{{- end -}}
{{- end -}}

{{/* Egress of the chart's pods: every pod of the cluster, and anywhere else but the metadata services. */}}
{{- define "modelfleet.egress" -}}
{{- $v4 := list -}}
{{- $v6 := list -}}
{{- range .Values.networkPolicy.deniedEgressCIDRs -}}
{{- if contains ":" . -}}{{- $v6 = append $v6 . -}}{{- else -}}{{- $v4 = append $v4 . -}}{{- end -}}
{{- end -}}
- to:
    - namespaceSelector: {}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        {{- with $v4 }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    - ipBlock:
        cidr: ::/0
        {{- with $v6 }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
{{- end -}}
