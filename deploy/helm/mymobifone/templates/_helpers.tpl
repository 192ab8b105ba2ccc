{{/* Names and labels ---------------------------------------------------------------------- */}}

{{- define "mymobifone.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mymobifone.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mymobifone.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* (dict "root" $ "component" "account") */}}
{{- define "mymobifone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mymobifone.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mymobifone.labels" -}}
helm.sh/chart: {{ include "mymobifone.chart" .root }}
{{ include "mymobifone.selectorLabels" . }}
app.kubernetes.io/part-of: mymobifone
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "mymobifone.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "mymobifone.fullname" .)) -}}
{{- end -}}

{{- define "mymobifone.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "mymobifone.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The services the platform has, in the order the local renderer uses. */}}
{{- define "mymobifone.knownServices" -}}
account vas payment loyalty notify stores
{{- end -}}

{{/* A service's values: serviceDefaults overridden by services.<name>, as YAML. (list $ name) */}}
{{- define "mymobifone.serviceConfig" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $own := get $root.Values.services $name | default dict -}}
{{- include "mymobifone.merge" (list $root.Values.serviceDefaults $own) -}}
{{- end -}}

{{/* Deep merge, src over dst, as YAML. Unlike sprig's mergeOverwrite, false/0/"" in src win
     (services.vas.pdb.enabled=false must turn the PDB off). (list dst src) */}}
{{- define "mymobifone.merge" -}}
{{- $dst := deepCopy (index . 0) -}}
{{- range $k, $v := index . 1 -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) -}}
{{- $_ := set $dst $k (include "mymobifone.merge" (list (get $dst $k) $v) | fromYaml) -}}
{{- else -}}
{{- $_ := set $dst $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $dst -}}
{{- end -}}

{{/* "true" when services.<name>.enabled. (list $ name) */}}
{{- define "mymobifone.serviceEnabled" -}}
{{- $root := index . 0 -}}
{{- $own := get $root.Values.services (index . 1) -}}
{{- if and $own $own.enabled -}}true{{- end -}}
{{- end -}}

{{/* repository@digest when a digest is given (immutable: what was scanned is what runs),
     else repository:tag. (dict "repository" .. "tag" .. "digest" ..) */}}
{{- define "mymobifone.image" -}}
{{- if .digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .digest) -}}{{- fail (printf "image digest %q: expected sha256:<64 hex digits>" .digest) -}}{{- end -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}
{{- end -}}

{{- define "mymobifone.serviceImage" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $cfg := index . 2 -}}
{{- $repo := $cfg.image.repository | default (printf "%s/%s-service" $root.Values.image.registry $name) -}}
{{- $tag := $cfg.image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- include "mymobifone.image" (dict "repository" $repo "tag" $tag "digest" ($cfg.image.digest | default "")) -}}
{{- end -}}

{{/* A generated key: the given value, else the one already in the cluster's Secret, else a new
     random one. (list $ "gateway-key-account" (index .Values.secrets.gatewayKeys "account")) */}}
{{- define "mymobifone.generatedKey" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $given := index . 2 -}}
{{- if $given -}}
{{- $given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "mymobifone.secretName" $root) -}}
{{- if and $existing $existing.data (index $existing.data $key) -}}
{{- index $existing.data $key | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Keys ----------------------------------------------------------------------------------
     Every service has its own gateway key (the gateway sends it in X-Gateway-Key to that
     service only) and every caller of /internal routes its own internal key, so one leaked key
     speaks for one party only. Secret keys: gateway-key-<service>, internal-key-<caller> with
     the caller's "-service" suffix dropped (internal-key-payment, internal-key-ops). */}}

{{/* The enabled services, space separated, in knownServices order. */}}
{{- define "mymobifone.enabledServices" -}}
{{- $root := . -}}
{{- $names := list -}}
{{- range $name := splitList " " (include "mymobifone.knownServices" .) -}}
{{- if include "mymobifone.serviceEnabled" (list $root $name) -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- join " " $names -}}
{{- end -}}

{{/* Who may call /internal routes (servicekit/internal_keys.py KNOWN_CALLERS). */}}
{{- define "mymobifone.knownCallers" -}}
account-service payment-service vas-service loyalty-service notify-service stores-service ops campaign-tools content-provider
{{- end -}}

{{/* The callers that need an internal key: every enabled service (for its own calls) and every
     caller an enabled service accepts (services.<name>.internalCallers), space separated. */}}
{{- define "mymobifone.internalKeyCallers" -}}
{{- $root := . -}}
{{- $callers := list -}}
{{- range $name := splitList " " (include "mymobifone.enabledServices" .) | compact -}}
{{- $callers = append $callers (printf "%s-service" $name) -}}
{{- $callers = concat $callers ((include "mymobifone.serviceConfig" (list $root $name) | fromYaml).internalCallers | default list) -}}
{{- end -}}
{{- $callers | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/* The content providers the enabled services accept, each with its own key
     (services.<name>.contentProviders), space separated. */}}
{{- define "mymobifone.contentProviders" -}}
{{- $root := . -}}
{{- $providers := list -}}
{{- range $name := splitList " " (include "mymobifone.enabledServices" .) | compact -}}
{{- $providers = concat $providers ((include "mymobifone.serviceConfig" (list $root $name) | fromYaml).contentProviders | default list) -}}
{{- end -}}
{{- $providers | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/* The Secret key holding a caller's internal key: "payment-service" -> internal-key-payment. */}}
{{- define "mymobifone.internalKeyName" -}}
{{- printf "internal-key-%s" (trimSuffix "-service" .) -}}
{{- end -}}

{{/* Every key the Secret must hold for the enabled services, as YAML: key -> "secret" (must be
     a real secret: not a default, at least 32 bytes) or "value" (must only be present). */}}
{{- define "mymobifone.requiredSecretKeys" -}}
{{- $root := . -}}
{{- $keys := dict "mongodb-url" "value" "redis-url" "value" "jwt-public-key" "value" -}}
{{- range $name := splitList " " (include "mymobifone.enabledServices" .) | compact -}}
{{- $cfg := include "mymobifone.serviceConfig" (list $root $name) | fromYaml -}}
{{- $_ := set $keys (printf "gateway-key-%s" $name) "secret" -}}
{{- if $cfg.jwtPrivateKey -}}{{- $_ := set $keys "jwt-private-key" "value" -}}{{- end -}}
{{- range $env, $key := $cfg.secretEnv -}}{{- $_ := set $keys $key "secret" -}}{{- end -}}
{{- end -}}
{{- range $caller := splitList " " (include "mymobifone.internalKeyCallers" .) | compact -}}
{{- $_ := set $keys (include "mymobifone.internalKeyName" $caller) "secret" -}}
{{- end -}}
{{- range $provider := splitList " " (include "mymobifone.contentProviders" .) | compact -}}
{{- $_ := set $keys (printf "provider-key-%s" $provider) "secret" -}}
{{- end -}}
{{- toYaml $keys -}}
{{- end -}}

{{/* What is wrong with a secret's value, or "" (the services' own rule: servicekit.settings).
     Not empty, not a laptop/example default, at least 32 bytes except where a protocol keeps
     it short (SMPP v3.4 passwords: at most 8 characters). (list "where" "key-name" value) */}}
{{- define "mymobifone.secretProblem" -}}
{{- $where := index . 0 -}}
{{- $key := index . 1 -}}
{{- $value := index . 2 | default "" | toString -}}
{{- $short := list "smsc-password" -}}
{{- if not $value -}}
{{- printf "%s is empty" $where -}}
{{- else if regexMatch "(?i)change-?me|local-|sandbox-|compose-|example|default" $value -}}
{{- printf "%s is a known default or example value" $where -}}
{{- else if and (lt (len $value) 32) (not (has $key $short)) -}}
{{- printf "%s is shorter than 32 bytes" $where -}}
{{- end -}}
{{- end -}}

{{/* The gateway's key file, written by an init container from the Secret's gateway-key-<service>
     keys mounted as files (<dir>/<service>), into an in-memory emptyDir: no key sits in a
     ConfigMap or travels as an environment variable. A key outside the characters the chart
     allows (it goes inside nginx's quotes) stops the pod. Usage: sh gateway-keys.sh DIR OUT */}}
{{- define "mymobifone.gateway.keyScript" -}}
#!/bin/sh
set -eu
dir=$1 out=$2
{
  echo '# The key each service requires in X-Gateway-Key (the Secret, mounted as files).'
  echo 'map $gw_service $gw_gateway_key {'
  echo '    default "";'
  for file in "$dir"/*; do
    name=${file##*/}
    key=$(cat "$file")
    case $key in
      "" | *[!A-Za-z0-9._~+/=-]*)
        echo "gateway-key-$name: empty or not only A-Z a-z 0-9 . _ ~ + / = -" >&2
        exit 1 ;;
    esac
    echo "    $name \"$key\";"
  done
  echo '}'
} >"$out.tmp"
mv "$out.tmp" "$out"
{{- end -}}

{{/* Gateway nginx.conf -------------------------------------------------------------------
     Rendered from files/gateway/nginx.conf.tmpl and routes.tsv exactly as
     deploy/gateway/render.py renders them (tests/deploy checks the two outputs are equal). */}}

{{- define "mymobifone.gateway.upstreams" -}}
{{- $root := . -}}
{{- $g := .Values.gateway -}}
{{- $blocks := list -}}
{{- range $name := splitList " " (include "mymobifone.knownServices" .) -}}
{{- if include "mymobifone.serviceEnabled" (list $root $name) -}}
{{- $cfg := include "mymobifone.serviceConfig" (list $root $name) | fromYaml -}}
{{- $address := printf "%s-%s.%s.svc:%v" (include "mymobifone.fullname" $root) $name $root.Release.Namespace $cfg.port -}}
{{- $lines := list (printf "    upstream gw_%s {" $name) (printf "        server %s;" $address) "        keepalive 32;" "        keepalive_requests 1000;" (printf "        keepalive_timeout %s;" $g.upstreamKeepaliveTimeout) "    }" -}}
{{- $blocks = append $blocks (join "\n" $lines) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $blocks -}}
{{- end -}}

{{- define "mymobifone.gateway.routes" -}}
{{- $root := . -}}
{{- $g := .Values.gateway -}}
{{- $ops := dict "exact" "=" "prefix" "^~" "regex" "~" -}}
{{- $bursts := dict "api" $g.burst "auth" $g.authBurst "webhook" $g.webhookBurst -}}
{{- $blocks := list -}}
{{- range $raw := splitList "\n" (.Files.Get "files/gateway/routes.tsv") -}}
{{- $line := regexReplaceAll "#.*$" $raw "" | trim -}}
{{- if $line -}}
{{- $f := regexSplit "\\s+" $line -1 -}}
{{- if ne (len $f) 5 -}}{{- fail (printf "routes.tsv: bad line %q" $raw) -}}{{- end -}}
{{- $match := index $f 0 -}}
{{- $path := index $f 1 -}}
{{- $svc := index $f 2 -}}
{{- $zone := index $f 3 -}}
{{- $audience := index $f 4 -}}
{{- $lines := list (printf "        location %s %s {" (get $ops $match) $path) (printf "            set $gw_service %s;" $svc) -}}
{{- if ne $audience "app" -}}
{{- $lines = concat $lines (list "            if ($gw_zero_rated) {" "                return 404;" "            }") -}}
{{- end -}}
{{- if include "mymobifone.serviceEnabled" (list $root $svc) -}}
{{- $lines = append $lines (printf "            limit_req zone=gw_%s burst=%v nodelay;" $zone (get $bursts $zone)) -}}
{{- $lines = append $lines (printf "            proxy_pass http://gw_%s;" $svc) -}}
{{- else -}}
{{- $lines = append $lines "            return 503;" -}}
{{- end -}}
{{- $lines = append $lines "        }" -}}
{{- $blocks = append $blocks (join "\n" $lines) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $blocks -}}
{{- end -}}

{{- define "mymobifone.gateway.statusServer" -}}
{{- if .Values.gateway.metrics.enabled -}}
{{- $lines := list "    # nginx's connection counters for the Prometheus exporter (local address only)." "    server {" (printf "        listen 127.0.0.1:%v;" .Values.gateway.metrics.statusPort) "        access_log off;" "        location = /nginx_status {" "            stub_status;" "        }" "        location / {" "            return 404;" "        }" "    }" -}}
{{- join "\n" $lines -}}
{{- end -}}
{{- end -}}

{{- define "mymobifone.gateway.cidrs" -}}
{{- $lines := list -}}
{{- range $cidr := . -}}
{{- if not (regexMatch "^([0-9]{1,3}\\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$|^[0-9a-fA-F:]+/[0-9]{1,3}$" $cidr) -}}
{{- fail (printf "gateway: %q is not an address/prefix (e.g. 10.20.0.0/16)" $cidr) -}}
{{- end -}}
{{- if hasSuffix "/0" $cidr -}}
{{- fail (printf "gateway: %q would match every address" $cidr) -}}
{{- end -}}
{{- $lines = append $lines (printf "        %s 1;" $cidr) -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{- define "mymobifone.gateway.rate" -}}
{{- $v := toString . -}}
{{- if not (regexMatch "^[1-9][0-9]*(r/[sm])?$" $v) -}}{{- fail (printf "gateway: rate %q: expected e.g. 20 or 20r/s" $v) -}}{{- end -}}
{{- if contains "/" $v -}}{{- $v -}}{{- else -}}{{- printf "%sr/s" $v -}}{{- end -}}
{{- end -}}

{{- define "mymobifone.gateway.nginxConf" -}}
{{- $g := .Values.gateway -}}
{{- $statusServer := include "mymobifone.gateway.statusServer" . -}}
{{- .Files.Get "files/gateway/nginx.conf.tmpl"
  | replace "@USER_DIRECTIVE@" ""
  | replace "@WORKER_PROCESSES@" (toString $g.workerProcesses)
  | replace "@WORKER_CONNECTIONS@" (toString $g.workerConnections)
  | replace "@PID_FILE@" "/tmp/nginx.pid"
  | replace "@TEMP_DIR@" "/tmp"
  | replace "@ERROR_LOG@" "/dev/stderr"
  | replace "@ACCESS_LOG@" "/dev/stdout"
  | replace "@KEY_INCLUDE@" "/etc/nginx/conf.d/gateway-key.conf"
  | replace "@NJS_MODULE@" (toString $g.njsModule)
  | replace "@LISTEN@" (toString $g.port)
  | replace "@CARRIER_GEO@" (include "mymobifone.gateway.cidrs" $g.carrierProxyCidrs)
  | replace "@EXEMPT_GEO@" (include "mymobifone.gateway.cidrs" $g.rateLimitExemptCidrs)
  | replace "@RATE@" (include "mymobifone.gateway.rate" $g.rate)
  | replace "@BURST@" (toString $g.burst)
  | replace "@AUTH_RATE@" (include "mymobifone.gateway.rate" $g.authRate)
  | replace "@WEBHOOK_RATE@" (include "mymobifone.gateway.rate" $g.webhookRate)
  | replace "@BODY_LIMIT@" (toString $g.bodyLimit)
  | replace "@CONNECT_TIMEOUT@" (toString $g.connectTimeout)
  | replace "@READ_TIMEOUT@" (toString $g.readTimeout)
  | replace "@FORWARDED_PROTO@" (toString $g.forwardedProto)
  | replace "@UPSTREAMS@" (include "mymobifone.gateway.upstreams" .)
  | replace "@ROUTES@" (include "mymobifone.gateway.routes" .)
  | replace "@STATUS_SERVER@" $statusServer
  | replace "@ZERO_RATED_LISTEN@" (include "mymobifone.zeroRated.listen" .)
  | replace "@ZERO_RATED_PORT_MAP@" (include "mymobifone.zeroRated.portMap" .)
  | replace "@ZERO_RATED_HOST_MAP@" (include "mymobifone.zeroRated.hostMap" .)
-}}
{{- end -}}

{{/* Pod-level pieces shared by every Deployment ------------------------------------------ */}}

{{- define "mymobifone.preStop" -}}
{{- if gt (int .) 0 }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", "{{ . }}"]
{{- end }}
{{- end -}}

{{- define "mymobifone.spread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "mymobifone.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "mymobifone.selectorLabels" . | nindent 8 }}
{{- end -}}

{{/* Kafka as a principal: its name, and where its password and the brokers' CA are mounted
     (servicekit KitSettings: KAFKA_USERNAME, KAFKA_PASSWORD_FILE, KAFKA_CA_FILE). (list $ principal) */}}
{{- define "mymobifone.kafkaEnv" -}}
- name: KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: KAFKA_USERNAME
  value: {{ index . 1 | quote }}
- name: KAFKA_PASSWORD_FILE
  value: /etc/mymobifone/kafka-user/password
- name: KAFKA_CA_FILE
  value: /etc/mymobifone/kafka-ca/ca.crt
{{- end -}}

{{- define "mymobifone.kafkaMounts" -}}
- name: kafka-user
  mountPath: /etc/mymobifone/kafka-user
  readOnly: true
- name: kafka-ca
  mountPath: /etc/mymobifone/kafka-ca
  readOnly: true
{{- end -}}

{{/* (list $ principal) */}}
{{- define "mymobifone.kafkaVolumes" -}}
{{- $root := index . 0 -}}
{{- $principal := index . 1 -}}
{{- $sec := $root.Values.kafka.security -}}
- name: kafka-user
  secret:
    secretName: {{ get ($sec.userSecrets | default dict) $principal | default $principal }}
    defaultMode: 0400
    items:
      - key: password
        path: password
- name: kafka-ca
  secret:
    secretName: {{ $sec.caSecret }}
    items:
      - key: {{ $sec.caKey | default "ca.crt" }}
        path: ca.crt
{{- end -}}

{{/* A service's secrets as files of its SECRETS_DIR: Secret key -> the settings field it fills
     (servicekit KitSettings reads a file per field, a directory per dict field). Only its own
     gateway and internal keys, the keys of the callers it accepts, its providers' keys and
     its secretEnv keys (ENV_NAME: key -> file env_name). (list $ name cfg) */}}
{{- define "mymobifone.serviceSecretFiles" -}}
{{- $name := index . 1 -}}
{{- $cfg := index . 2 -}}
- key: mongodb-url
  path: mongodb_url
- key: redis-url
  path: redis_url
- key: gateway-key-{{ $name }}
  path: gateway_key
- key: {{ include "mymobifone.internalKeyName" (printf "%s-service" $name) }}
  path: internal_key
{{- range $caller := $cfg.internalCallers }}
- key: {{ include "mymobifone.internalKeyName" $caller }}
  path: internal_caller_keys/{{ $caller }}
{{- end }}
{{- range $provider := $cfg.contentProviders }}
- key: provider-key-{{ $provider }}
  path: content_provider_keys/{{ $provider }}
{{- end }}
{{- range $env, $key := $cfg.secretEnv }}
- key: {{ $key }}
  path: {{ lower $env }}
{{- end }}
{{- end -}}

{{/* Egress to the cluster's DNS. (.Values.networkPolicy) */}}
{{- define "mymobifone.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .dns.podSelector | nindent 8 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}


{{/* Zero-rated app traffic ---------------------------------------------------------------
     The gateway's second listener (zeroRating.port) answers only zeroRating.host and only the
     app's routes (routes.tsv audience "app"); as deploy/gateway/render.py renders it. */}}
{{- define "mymobifone.zeroRated.check" -}}
{{- $z := .Values.zeroRating -}}
{{- if $z.enabled -}}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$" (toString $z.host)) -}}
{{- fail (printf "zeroRating.host %q: expected a lower-case host name, e.g. app-api.mobifone.vn" (toString $z.host)) -}}
{{- end -}}
{{- if eq (int $z.port) (int .Values.gateway.port) -}}
{{- fail "zeroRating.port must differ from gateway.port (the carrier sees only the zero-rated one)" -}}
{{- end -}}
{{- range $address := $z.addresses -}}
{{- if not (regexMatch "^([0-9]{1,3}\\.){3}[0-9]{1,3}$|^[0-9a-fA-F:]+:[0-9a-fA-F:]*$" (toString $address)) -}}
{{- fail (printf "zeroRating.addresses: %q is not an IP address" (toString $address)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mymobifone.zeroRated.listen" -}}
{{- if .Values.zeroRating.enabled -}}
{{- include "mymobifone.zeroRated.check" . -}}
{{- printf "        listen %v;  # zero-rated: %s and the app's routes only" (int .Values.zeroRating.port) .Values.zeroRating.host -}}
{{- end -}}
{{- end -}}

{{- define "mymobifone.zeroRated.portMap" -}}
{{- if .Values.zeroRating.enabled -}}
{{- printf "        %v 1;" (int .Values.zeroRating.port) -}}
{{- end -}}
{{- end -}}

{{- define "mymobifone.zeroRated.hostMap" -}}
{{- if .Values.zeroRating.enabled -}}
{{- printf "        \"1:%s\" 0;" .Values.zeroRating.host -}}
{{- end -}}
{{- end -}}

{{/* The app's routes (routes.tsv audience "app"), as published to the carrier: a list of
     "<match> <path>" as YAML. */}}
{{- define "mymobifone.zeroRated.routes" -}}
{{- $routes := list -}}
{{- range $raw := splitList "\n" (.Files.Get "files/gateway/routes.tsv") -}}
{{- $line := regexReplaceAll "#.*$" $raw "" | trim -}}
{{- if $line -}}
{{- $f := regexSplit "\\s+" $line -1 -}}
{{- if eq (index $f 4) "app" -}}
{{- $routes = append $routes (dict "match" (index $f 0) "path" (index $f 1)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $routes -}}
{{- end -}}

{{/* What the carrier zero-rates: the host, the addresses and ports of the zero-rated Service,
     the paths answered there. As JSON. */}}
{{- define "mymobifone.zeroRated.published" -}}
{{- $z := .Values.zeroRating -}}
{{- $published := dict
  "host" $z.host
  "addresses" ($z.addresses | default list)
  "ports" (list (int $z.service.port))
  "protocol" "TCP"
  "service" (printf "%s-gateway-zero-rated" (include "mymobifone.fullname" .))
  "routes" (include "mymobifone.zeroRated.routes" . | fromYamlArray)
-}}
{{- toPrettyJson $published -}}
{{- end -}}
