{{/* Names, labels, images and the shared pieces of both Deployments. */}}

{{- define "ocvr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ocvr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>, within 63 characters. Call with (dict "root" $ "component" "gateway"). */}}
{{- define "ocvr.componentName" -}}
{{- printf "%s-%s" (include "ocvr.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "ocvr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "ocvr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ocvr-realtime
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. (dict "root" $ "component" "gateway") */}}
{{- define "ocvr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ocvr.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. (dict "root" $ "component" "gateway") */}}
{{- define "ocvr.componentLabels" -}}
{{ include "ocvr.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ocvr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ocvr.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference. (dict "root" $ "image" .Values.gateway.image) */}}
{{- define "ocvr.image" -}}
{{- $reg := .root.Values.image.registry | trimSuffix "/" -}}
{{- $repo := .image.repository -}}
{{- if $reg }}{{ $repo = printf "%s/%s" $reg $repo }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Seconds as a Go duration. */}}
{{- define "ocvr.seconds" -}}
{{- printf "%ds" (int .) | quote -}}
{{- end -}}

{{/* Gateway drain arithmetic (see values.yaml gateway.drain). */}}
{{- define "ocvr.gateway.shutdownTimeout" -}}
{{- $d := .Values.gateway.drain -}}
{{- add $d.readinessDelaySeconds $d.windowSeconds $d.closeTimeoutSeconds -}}
{{- end -}}
{{- define "ocvr.gateway.terminationGracePeriod" -}}
{{- $d := .Values.gateway.drain -}}
{{- add $d.preStopSleepSeconds (include "ocvr.gateway.shutdownTimeout" . | int) $d.exitMarginSeconds -}}
{{- end -}}
{{- define "ocvr.ticketsvc.terminationGracePeriod" -}}
{{- $d := .Values.ticketsvc.drain -}}
{{- add $d.preStopSleepSeconds $d.shutdownTimeoutSeconds $d.exitMarginSeconds -}}
{{- end -}}

{{/* NATS environment shared by both services. */}}
{{- define "ocvr.natsEnv" -}}
{{- $n := .Values.nats -}}
{{- if $n.urlSecret.name }}
- name: OCVR_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $n.urlSecret.name | quote }}
      key: {{ $n.urlSecret.key | quote }}
{{- else }}
- name: OCVR_NATS_URL
  value: {{ join "," $n.urls | quote }}
{{- end }}
- name: OCVR_SUBJECT_PREFIX
  value: {{ $n.subjectPrefix | quote }}
- name: OCVR_JETSTREAM_DOMAIN
  value: {{ $n.jetstreamDomain | quote }}
- name: OCVR_SESSIONS_BUCKET
  value: {{ $n.buckets.sessions | quote }}
- name: OCVR_TICKETS_BUCKET
  value: {{ $n.buckets.tickets | quote }}
{{- if $n.credentials.existingSecret }}
- name: OCVR_NATS_CREDS
  value: {{ printf "/etc/ocvr/nats-creds/%s" $n.credentials.key | quote }}
{{- end }}
{{- if $n.tls.enabled }}
- name: OCVR_NATS_TLS_CA
  value: {{ printf "/etc/ocvr/nats-tls/%s" $n.tls.caKey | quote }}
{{- if $n.tls.certKey }}
- name: OCVR_NATS_TLS_CERT
  value: {{ printf "/etc/ocvr/nats-tls/%s" $n.tls.certKey | quote }}
- name: OCVR_NATS_TLS_KEY
  value: {{ printf "/etc/ocvr/nats-tls/%s" $n.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Go runtime sizing (values <component>.goRuntime, pkg/goruntime).
GOMAXPROCS: the CPU request rounded up (the downward API rounds a
resourceFieldRef up to the divisor, so 250m gives 1; no request gives 0,
which the Go runtime ignores). AUTOMEMLIMIT: the share of the cgroup memory
limit the binary gives GOMEMLIMIT. Call with
(dict "container" "gateway" "values" .Values.gateway). */}}
{{- define "ocvr.goRuntimeEnv" -}}
{{- $r := .values.goRuntime -}}
{{- if $r.maxProcsFromRequest }}
- name: GOMAXPROCS
  valueFrom:
    resourceFieldRef:
      containerName: {{ .container }}
      resource: requests.cpu
      divisor: "1"
{{- end }}
- name: AUTOMEMLIMIT
  value: {{ if gt (float64 $r.memoryLimitRatio) 0.0 }}{{ toString $r.memoryLimitRatio | quote }}{{ else }}"off"{{ end }}
{{- end -}}

{{- define "ocvr.natsVolumeMounts" -}}
{{- $n := .Values.nats -}}
{{- if $n.credentials.existingSecret }}
- name: nats-creds
  mountPath: /etc/ocvr/nats-creds
  readOnly: true
{{- end }}
{{- if $n.tls.enabled }}
- name: nats-tls
  mountPath: /etc/ocvr/nats-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ocvr.natsVolumes" -}}
{{- $n := .Values.nats -}}
{{- if $n.credentials.existingSecret }}
- name: nats-creds
  secret:
    secretName: {{ $n.credentials.existingSecret | quote }}
    defaultMode: 0440
    items:
      - key: {{ $n.credentials.key | quote }}
        path: {{ $n.credentials.key | quote }}
{{- end }}
{{- if $n.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ $n.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Topology spread constraints. (dict "root" $ "component" "gateway" "spread" .Values.gateway.topologySpread) */}}
{{- define "ocvr.topologySpread" -}}
{{- $keys := dict "zone" "topology.kubernetes.io/zone" "hostname" "kubernetes.io/hostname" -}}
{{- range $k := list "zone" "hostname" }}
{{- $c := get $.spread $k }}
{{- if $c.enabled }}
- topologyKey: {{ get $keys $k }}
  maxSkew: {{ $c.maxSkew }}
  whenUnsatisfiable: {{ $c.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "ocvr.selectorLabels" $ | nindent 6 }}
  matchLabelKeys:
    - pod-template-hash
{{- end }}
{{- end }}
{{- end -}}

{{/* HPA behavior. Call with the behavior values. */}}
{{- define "ocvr.hpaBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: {{ .scaleUp.stabilizationWindowSeconds }}
  selectPolicy: Max
  policies:
    - type: Percent
      value: {{ .scaleUp.percent }}
      periodSeconds: {{ .scaleUp.periodSeconds }}
    - type: Pods
      value: {{ .scaleUp.pods }}
      periodSeconds: {{ .scaleUp.periodSeconds }}
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDown.stabilizationWindowSeconds }}
  selectPolicy: Max
  policies:
    - type: Percent
      value: {{ .scaleDown.percent }}
      periodSeconds: {{ .scaleDown.periodSeconds }}
    - type: Pods
      value: {{ .scaleDown.pods }}
      periodSeconds: {{ .scaleDown.periodSeconds }}
{{- end -}}

{{/* Probes on the admin port. Call with (dict "probes" .Values.x.probes). */}}
{{- define "ocvr.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: admin
  periodSeconds: {{ .probes.startup.periodSeconds }}
  timeoutSeconds: {{ .probes.startup.timeoutSeconds }}
  failureThreshold: {{ .probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  periodSeconds: {{ .probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  periodSeconds: {{ .probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .probes.readiness.failureThreshold }}
  successThreshold: {{ .probes.readiness.successThreshold }}
{{- end -}}

{{/* Resource name from a file name: deploy/grafana/OCVR_Gateway.json -> ocvr-gateway. */}}
{{- define "ocvr.fileResourceName" -}}
{{- $n := base . | trimSuffix (ext .) | lower -}}
{{- regexReplaceAll "[^a-z0-9-]+" $n "-" | trimAll "-" -}}
{{- end -}}
