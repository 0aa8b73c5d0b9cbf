{{/* Common names and labels. */}}
{{- define "surge.name" -}}{{ default "surge" .Values.nameOverride | trunc 63 | trimSuffix "-" }}{{- end -}}

{{- define "surge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "surge" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-surge" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "surge.labels" -}}
app.kubernetes.io/name: {{ include "surge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: surge
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "surge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "surge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "surge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "surge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "surge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Namespaces the operator watches when not cluster-wide (default: the release's). */}}
{{- define "surge.watchedNamespaces" -}}
{{- default (list .Release.Namespace) .Values.operator.namespaces | uniq | join "," -}}
{{- end -}}

{{/* The data-plane default pod template, with the chart's imagePullSecrets added. */}}
{{- define "surge.podTemplateJSON" -}}
{{- $template := deepCopy (default (dict) .Values.dataPlane.podTemplate) -}}
{{- if .Values.imagePullSecrets -}}
{{- $secrets := concat (default (list) (get $template "imagePullSecrets")) .Values.imagePullSecrets -}}
{{- $_ := set $template "imagePullSecrets" $secrets -}}
{{- end -}}
{{- if $template }}{{ toJson $template }}{{ end -}}
{{- end -}}

{{/* Labels of the objects that are not the operator itself (tests, aggregated roles). */}}
{{- define "surge.commonLabels" -}}
app.kubernetes.io/name: {{ include "surge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: surge
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The operator's rules, as a ClusterRole (cluster-wide) or a Role per watched namespace. */}}
{{- define "surge.secretRules" }}
  # get: the Secrets a MessagingCluster names on purpose (NATS credentials, gateway
  # tokens, CA), by name, no list/watch; create/patch: managed NATS's generated
  # credentials, server configuration and certificates.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, create, patch, update]
{{- end }}

{{- define "surge.operatorRules" }}
rules:
  - apiGroups: [surge.dev]
    resources: [messagingclusters]
    verbs: [get, list, watch, patch, update]
  - apiGroups: [surge.dev]
    resources: [messagingclusters/status]
    verbs: [get, patch, update]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch, create, patch, update, delete]
  - apiGroups: [apps]
    resources: [deployments/scale]
    verbs: [get, patch, update]
  # Managed NATS (spec.regions[].nats.managed): one StatefulSet per region. Its update
  # strategy is OnDelete, so the operator deletes one server pod at a time itself.
  - apiGroups: [apps]
    resources: [statefulsets]
    verbs: [get, list, watch, create, patch, update, delete]
  - apiGroups: [""]
    resources: [services, serviceaccounts, configmaps]
    verbs: [get, list, watch, create, patch, update, delete]
  # Managed NATS: the operator lists its StatefulSet's pods by label to observe the servers
  # (handlers/nats_ops.py) and deletes them one at a time to roll; it never watches pods.
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, delete]
  # Backups run as a CronJob per cluster, a restore as a Job (read by name, never listed).
  - apiGroups: [batch]
    resources: [cronjobs, jobs]
    verbs: [get, create, patch, update, delete]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [get, list, watch, create, patch, update, delete]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch, create, patch, update, delete]
  # Each MessagingCluster gets a Role (get its ConfigMap and named Secrets) and a
  # RoleBinding for its pods; the operator holds those permissions itself, so no
  # escalate/bind is needed.
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [roles, rolebindings]
    verbs: [get, list, watch, create, patch, update, delete]
  - apiGroups: ["", events.k8s.io]
    resources: [events]
    verbs: [create, patch]
{{- end }}
