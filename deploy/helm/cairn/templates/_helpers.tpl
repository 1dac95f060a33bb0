{{/* Labels on every object: `cairn install`'s name label, plus Helm's. */}}
{{- define "cairn.labels" -}}
app.kubernetes.io/name: cairn
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The server's image: the repository at the given tag, else at the chart's appVersion. */}}
{{- define "cairn.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret holding the default location's credentials file, or nothing. */}}
{{- define "cairn.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret -}}
{{ .Values.credentials.existingSecret }}
{{- else if .Values.credentials.secretContents -}}
cairn-credentials
{{- end -}}
{{- end -}}

{{/* "true" when the default location is a local directory on the chart's volume. */}}
{{- define "cairn.localLocation" -}}
{{- $location := .Values.defaultBackupStorageLocation -}}
{{- if and $location.enabled (eq $location.provider "local") -}}
true
{{- end -}}
{{- end -}}

{{/* A map as YAML lines whose keys and values are quoted strings: annotations and a location's config take
strings only, and `--set key=true` would otherwise give a boolean. */}}
{{- define "cairn.stringMap" -}}
{{- range $key, $value := . }}
{{ $key | quote }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
