{{/* The release's full name, used for the operator's Deployment, ServiceAccount and RBAC objects. */}}
{{- define "pyrostore.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pyrostore.labels" -}}
app.kubernetes.io/name: pyrostore-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pyrostore.selectorLabels" -}}
app.kubernetes.io/name: pyrostore-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pyrostore.serviceAccountName" -}}
{{- default (include "pyrostore.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "pyrostore.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What the operator does inside a watched namespace: its resources, their children, Secrets it reads. */}}
{{- define "pyrostore.namespacedRules" -}}
- apiGroups: [pyrostore.io]
  resources: [topicarchives, replayjobs]
  verbs: [get, list, watch, patch, update]
- apiGroups: [pyrostore.io]
  resources: [topicarchives/status, replayjobs/status]
  verbs: [get, patch, update]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{- define "pyrostore.subjects" -}}
- kind: ServiceAccount
  name: {{ include "pyrostore.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/* The webhook's Service; its DNS names are the self-managed serving certificate's names. */}}
{{- define "pyrostore.webhookService" -}}
{{- printf "%s-webhook" (include "pyrostore.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pyrostore.webhookDnsNames" -}}
{{- $service := include "pyrostore.webhookService" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $service (printf "%s.%s" $service $ns) (printf "%s.%s.svc" $service $ns) (printf "%s.%s.svc.cluster.local" $service $ns) | join "," -}}
{{- end -}}
