{{/* Fails the render with a clear message instead of deploying something half-configured. */}}
{{- define "mymobifone.validate" -}}
{{- $root := . -}}
{{- if not .Values.kafka.bootstrap -}}
{{- fail "kafka.bootstrap is required (the external Kafka's bootstrap servers)" -}}
{{- end -}}
{{- if not .Values.kafka.security.caSecret -}}
{{- fail "kafka.security.caSecret is required: the Secret holding the brokers' CA (Strimzi: <cluster>-cluster-ca-cert)" -}}
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
{{- include "mymobifone.validateSecrets" . -}}
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

{{/* No default, example, empty or short secret reaches a cluster. The services refuse them too
     when they start, but only outside the local profile: so ENVIRONMENT must not be "local". */}}
{{- define "mymobifone.validateSecrets" -}}
{{- $root := . -}}
{{- $s := .Values.secrets -}}
{{- range $old := list "gatewayKey" "internalKey" -}}
{{- if index $s $old -}}
{{- fail (printf "secrets.%s is gone: every service has its own key now (secrets.%ss.<name>; see values.yaml)" $old $old) -}}
{{- end -}}
{{- end -}}
{{- $environments := list (.Values.config.ENVIRONMENT | default "") -}}
{{- range $name := splitList " " (include "mymobifone.enabledServices" .) | compact -}}
{{- $cfg := include "mymobifone.serviceConfig" (list $root $name) | fromYaml -}}
{{- if hasKey $cfg.env "ENVIRONMENT" -}}{{- $environments = append $environments $cfg.env.ENVIRONMENT -}}{{- end -}}
{{- range $caller := $cfg.internalCallers -}}
{{- if not (has $caller (splitList " " (include "mymobifone.knownCallers" $root))) -}}
{{- fail (printf "services.%s.internalCallers: unknown caller %q (known: %s)" $name $caller (include "mymobifone.knownCallers" $root)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $environment := $environments -}}
{{- if or (not $environment) (eq (lower (toString $environment)) "local") -}}
{{- fail "config.ENVIRONMENT must be set and not \"local\": the services accept their laptop defaults in the local profile" -}}
{{- end -}}
{{- end -}}
{{- $given := dict -}}
{{- range $kind := list "gatewayKeys" "internalKeys" "providerKeys" -}}
{{- range $name, $value := index $s $kind | default dict -}}
{{- if $value -}}
{{- $where := printf "secrets.%s.%s" $kind $name -}}
{{- with include "mymobifone.secretProblem" (list $where $name $value) -}}{{- fail . -}}{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9._~+/=-]+$" (toString $value)) -}}
{{- fail (printf "%s: only A-Z a-z 0-9 . _ ~ + / = - (it goes into nginx's config and JSON)" $where) -}}
{{- end -}}
{{- if hasKey $given (toString $value) -}}
{{- fail (printf "%s is the same key as %s: each service and caller needs its own" $where (get $given (toString $value))) -}}
{{- end -}}
{{- $_ := set $given (toString $value) $where -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := $s.extra -}}
{{- with include "mymobifone.secretProblem" (list (printf "secrets.extra.%s" $key) $key $value) -}}{{- fail . -}}{{- end -}}
{{- end -}}
{{- if $s.existingSecret -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $s.existingSecret -}}
{{- if $existing -}}
{{- $data := $existing.data | default dict -}}
{{- range $key, $kind := include "mymobifone.requiredSecretKeys" $root | fromYaml -}}
{{- $where := printf "secret %s, key %s" $s.existingSecret $key -}}
{{- if not (index $data $key) -}}
{{- fail (printf "%s: missing (the enabled services need it)" $where) -}}
{{- end -}}
{{- if eq $kind "secret" -}}
{{- with include "mymobifone.secretProblem" (list $where $key (index $data $key | b64dec)) -}}{{- fail . -}}{{- end -}}
{{- end -}}
{{- if and (regexMatch "^(gateway|internal)-key-" $key) (not (regexMatch "^[A-Za-z0-9._~+/=-]+$" (index $data $key | b64dec))) -}}
{{- fail (printf "%s: only A-Z a-z 0-9 . _ ~ + / = - (it goes into nginx's config and JSON)" $where) -}}
{{- end -}}
{{- end -}}
{{- else if lookup "v1" "Namespace" "" $root.Release.Namespace -}}
{{- fail (printf "secrets.existingSecret: no Secret %q in namespace %s" $s.existingSecret $root.Release.Namespace) -}}
{{- end -}}
{{- /* Without a cluster (helm template, helm lint, --dry-run=client) lookup returns nothing, so
       the existing Secret cannot be checked here: the services still check their own secrets
       when they start, ENVIRONMENT being non-local (checked above). */ -}}
{{- end -}}
{{- end -}}
