{{/* Fails the render with a clear message instead of deploying something half-configured. */}}
{{- define "mymobifone.validate" -}}
{{- $root := . -}}
{{- if not .Values.kafka.bootstrap -}}
{{- fail "kafka.bootstrap is required (the external Kafka's bootstrap servers)" -}}
{{- end -}}
{{- $known := splitList " " (include "mymobifone.knownServices" .) -}}
{{- range $name, $_ := .Values.services -}}
{{- if not (has $name $known) -}}
{{- fail (printf "services.%s: unknown service (known: %s)" $name (join ", " $known)) -}}
{{- end -}}
{{- end -}}
{{- range $name := $known -}}
{{- if include "mymobifone.serviceEnabled" (list $root $name) -}}
{{- range $callee := (include "mymobifone.serviceConfig" (list $root $name) | fromYaml).calls -}}
{{- if not (include "mymobifone.serviceEnabled" (list $root $callee)) -}}
{{- fail (printf "services.%s.calls: %s is not enabled" $name $callee) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- range $key := list "mongodbUrl" "redisUrl" "jwtPublicKey" -}}
{{- if not (index $root.Values.secrets $key) -}}
{{- fail (printf "secrets.%s is required unless secrets.existingSecret names a Secret" $key) -}}
{{- end -}}
{{- end -}}
{{- range $name := $known -}}
{{- if include "mymobifone.serviceEnabled" (list $root $name) -}}
{{- $cfg := include "mymobifone.serviceConfig" (list $root $name) | fromYaml -}}
{{- if and $cfg.jwtPrivateKey (not $root.Values.secrets.jwtPrivateKey) -}}
{{- fail (printf "secrets.jwtPrivateKey is required: %s signs access tokens" $name) -}}
{{- end -}}
{{- range $env, $key := $cfg.secretEnv -}}
{{- if not (hasKey $root.Values.secrets.extra $key) -}}
{{- fail (printf "services.%s.secretEnv.%s needs secrets.extra.%s" $name $env $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
