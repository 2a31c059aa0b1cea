{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "chartkind.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Base name of every object: fullnameOverride, else the release name when it
already contains the chart name ("chartkind"), else <release>-<chart>.
Cluster-scoped objects carry it too, so two releases never collide.
*/}}
{{- define "chartkind.fullname" -}}
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

{{/*
Labels of every object, without app.kubernetes.io/component.
*/}}
{{- define "chartkind.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "chartkind.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chartkind
{{- end }}

{{/*
Labels of the operator's objects.
*/}}
{{- define "chartkind.labels" -}}
{{ include "chartkind.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels selecting the operator's pods.
*/}}
{{- define "chartkind.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chartkind.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "chartkind.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chartkind.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "chartkind.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "chartkind.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* Webhook objects: the Service in front of the operator's webhook server,
the Secret holding its serving certificate, the cert-manager Certificate. */}}
{{- define "chartkind.webhookServiceName" -}}
{{- printf "%s-webhook" (include "chartkind.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chartkind.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "chartkind.fullname" .)) .Values.webhook.secretName }}
{{- end }}

{{- define "chartkind.webhookCertificateName" -}}
{{- printf "%s-webhook" (include "chartkind.fullname" .) }}
{{- end }}

{{/*
The webhook entry of the ValidatingWebhookConfiguration. The operator
server-side applies the entry of the same name (its rules, and its caBundle
when it manages the certificate itself), so name and path must match
internal/webhook (WebhookName, Path); test/chart checks they do.
*/}}
{{- define "chartkind.webhookEntryName" -}}
validate.chartkind.io
{{- end }}

{{- define "chartkind.webhookPath" -}}
/validate
{{- end }}
