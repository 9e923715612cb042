package config

import (
	"fmt"
	"math"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Okta MCP adapter's config.yaml and environment, as mcpgw reads them.
// mcpgw is the adapter's successor, so a team moves by pointing it at the
// files they have. Every adapter key and variable therefore either keeps its
// adapter meaning here or is refused at start, named, with what to write
// instead: a setting that silently stopped working would be a security
// setting nobody notices is gone.

// adapterTokenBytes is the room cache.backend_tokens.max_size buys per token
// when it becomes exchange.cache_max_bytes: mcpgw bounds the backend-token
// cache by memory, and a cached token with its key costs well under 2 KiB,
// so at least max_size tokens fit.
const adapterTokenBytes = 2 << 10

// Sections of the adapter's file that mcpgw translates into its own keys,
// and the keys each may hold. Nothing else is accepted in them.
var (
	adapterGatewayKeys = []string{"host", "port", "base_url"}
	adapterLoggingKeys = []string{"level"}
	adapterCacheKeys   = []string{"backend_tokens"}
	adapterTokenKeys   = []string{"ttl_seconds", "ttl", "max_size"}
)

// adapterKeyHints say why an adapter key that mcpgw does not take is
// refused and what to write instead, by where it stands (the Go type of the
// section holding it).
var adapterKeyHints = map[reflect.Type]map[string]string{
	reflect.TypeFor[Config](): {
		"name":        "the Okta MCP adapter's service name; mcpgw has no such setting: remove it",
		"version":     "the Okta MCP adapter's version string; mcpgw has no such setting: remove it",
		"description": "the Okta MCP adapter's service description; mcpgw has no such setting: remove it",
	},
	backendType: entryBookkeeping,
	agentType:   entryBookkeeping,
}

var entryBookkeeping = map[string]string{
	"created_by": bookkeepingHint,
	"created_at": bookkeepingHint,
	"updated_by": bookkeepingHint,
	"updated_at": bookkeepingHint,
}

const bookkeepingHint = "the Okta MCP adapter's bookkeeping; mcpgw records who changed an entry and when in its audit trail (GET /admin/v1/audit?kind=change): remove it"

// adapterEntryNames are keys an adapter entry may repeat its own name under
// (its map key); mcpgw accepts them when they agree with the key.
var adapterEntryNames = map[string][]string{
	"backends": {"name", "backend_name"},
	"agents":   {"name", "agent_name"},
}

// translateAdapterFile rewrites the adapter's gateway:, logging: and cache:
// sections into mcpgw's keys and drops entry names that repeat their map
// key. It runs on the file's tree before the environment layers, so a file
// that sets both an adapter key and the mcpgw key it stands for is caught
// (which one should win would be a guess).
func translateAdapterFile(raw map[string]any) []error {
	var errs []error
	errs = append(errs, translateGateway(raw)...)
	errs = append(errs, translateLogging(raw)...)
	errs = append(errs, translateCache(raw)...)
	errs = append(errs, dropEntryNames(raw)...)
	for _, section := range []string{"backends", "agents"} {
		errs = append(errs, placeholders(raw, section, raw[section])...)
	}
	return errs
}

// adapterPlaceholder matches the {NAME} placeholders of the adapter's
// example files ({AGENT_ID}, https://{OKTA_DOMAIN}/oauth2/{AUTH_SERVER_ID},
// "kid": "{KID}"), but not mcpgw's ${NAME} references.
var adapterPlaceholder = regexp.MustCompile(`(^|[^$])\{[A-Z][A-Z0-9_]*\}`)

// placeholders reports the adapter's placeholders left in backends and
// agents. Quoted, one would be sent as a literal credential or URL (the
// value stays, and the start stops on this error); unquoted, YAML reads
// {AGENT_ID} as a map, which is reported here for what it is and removed,
// rather than reported as a type error. Free text (descriptions, labels)
// is not looked at.
func placeholders(parent map[string]any, key string, v any) []error {
	var errs []error
	var walk func(path string, v any) (keep bool)
	walk = func(path string, v any) bool {
		switch t := v.(type) {
		case string:
			if m := adapterPlaceholder.FindString(t); m != "" {
				errs = append(errs, placeholderError(path, m[strings.IndexByte(m, '{'):]))
			}
		case map[string]any:
			if len(t) == 1 {
				for k, inner := range t {
					if inner == nil && adapterPlaceholder.MatchString("{"+k+"}") {
						errs = append(errs, placeholderError(path, "{"+k+"}"))
						return false
					}
				}
			}
			for _, k := range sortedKeys(t) {
				if k != "description" && k != "labels" && !walk(path+"."+k, t[k]) {
					delete(t, k)
				}
			}
		case []any:
			for i := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), t[i])
			}
		}
		return true
	}
	if !walk(key, v) {
		delete(parent, key)
	}
	return errs
}

// placeholderError says what to write instead of a placeholder: the value,
// or, where mcpgw resolves ${NAME} (auth_config, an agent's client_secret
// and private_key), a reference to the variable.
func placeholderError(path, placeholder string) error {
	instead := "write the value"
	if strings.Contains(path, ".auth_config") || strings.HasSuffix(path, ".client_secret") || strings.HasSuffix(path, ".private_key") {
		instead += " (or ${" + strings.Trim(placeholder, "{}") + "} to read it from the environment)"
	}
	return fmt.Errorf("%s: %s is a placeholder from the Okta MCP adapter's example files, not a value: %s", path, placeholder, instead)
}

// translateGateway: gateway.host and gateway.port are server.listen,
// gateway.base_url is server.public_url.
func translateGateway(raw map[string]any) []error {
	g, errs := adapterSection(raw, "gateway", adapterGatewayKeys)
	if g == nil {
		return errs
	}
	hostVal, hasHost := g["host"]
	portVal, hasPort := g["port"]
	if hasHost || hasPort {
		host, port, ok := defaultListenHost, 8000, true
		if hasHost {
			if s, isString := hostVal.(string); isString && strings.TrimSpace(s) != "" {
				host = strings.TrimSpace(s)
			} else {
				errs, ok = append(errs, fmt.Errorf("gateway.host: want a host name or IP address")), false
			}
		}
		if hasPort {
			if n, isInt := wholeNumber(portVal); isInt && n >= 1 && n <= 65535 {
				port = int(n)
			} else {
				errs, ok = append(errs, fmt.Errorf("gateway.port: want a port number between 1 and 65535")), false
			}
		}
		if ok {
			errs = appendErr(errs, setFromAdapter(raw, "gateway.host/gateway.port", net.JoinHostPort(host, strconv.Itoa(port)), "server", "listen"))
		}
	}
	return appendErr(errs, adapterString(raw, g, "gateway", "base_url", isHTTPURL,
		"must be an absolute http(s) URL (it becomes server.public_url)", "server", "public_url"))
}

// translateLogging: logging.level is log.level (which validation checks).
func translateLogging(raw map[string]any) []error {
	l, errs := adapterSection(raw, "logging", adapterLoggingKeys)
	return appendErr(errs, adapterString(raw, l, "logging", "level", func(string) bool { return true },
		"want debug, info, warning or error", "log", "level"))
}

// adapterString sets the mcpgw key segs from the string the adapter's
// section holds under key, when it is there and valid says so.
func adapterString(raw, section map[string]any, name, key string, valid func(string) bool, want string, segs ...string) error {
	v, ok := section[key]
	if !ok {
		return nil
	}
	from := name + "." + key
	if s, isString := v.(string); isString && valid(s) {
		return setFromAdapter(raw, from, s, segs...)
	}
	return fmt.Errorf("%s: %s", from, want)
}

// translateCache: the adapter's backend-token cache is mcpgw's exchange
// cache. ttl_seconds (or ttl) caps how long a token is reused, as in the
// adapter (mcpgw also never reuses one past its expires_in); max_size
// becomes a memory bound with room for at least that many tokens.
func translateCache(raw map[string]any) []error {
	c, errs := adapterSection(raw, "cache", adapterCacheKeys)
	if c == nil {
		return errs
	}
	bt, ok := c["backend_tokens"].(map[string]any)
	if !ok {
		if c["backend_tokens"] != nil {
			errs = append(errs, fmt.Errorf("cache.backend_tokens: want a section (%s)", strings.Join(adapterTokenKeys, ", ")))
		}
		return errs
	}
	errs = append(errs, unknownKeys("cache.backend_tokens", bt, adapterTokenKeys)...)
	_, hasSeconds := bt["ttl_seconds"]
	_, hasTTL := bt["ttl"]
	switch {
	case hasSeconds && hasTTL:
		errs = append(errs, fmt.Errorf("cache.backend_tokens.ttl: ttl_seconds is set too; keep one of them"))
	case hasSeconds:
		if n, isInt := wholeNumber(bt["ttl_seconds"]); isInt && n > 0 {
			errs = appendErr(errs, setFromAdapter(raw, "cache.backend_tokens.ttl_seconds", (time.Duration(n)*time.Second).String(), "exchange", "cache_max_ttl"))
		} else {
			errs = append(errs, fmt.Errorf("cache.backend_tokens.ttl_seconds: want a whole number of seconds > 0"))
		}
	case hasTTL:
		if d, err := adapterDuration(bt["ttl"]); err == nil && d > 0 {
			errs = appendErr(errs, setFromAdapter(raw, "cache.backend_tokens.ttl", d.String(), "exchange", "cache_max_ttl"))
		} else {
			errs = append(errs, fmt.Errorf(`cache.backend_tokens.ttl: want a duration > 0 such as "1h" or a number of seconds`))
		}
	}
	if v, ok := bt["max_size"]; ok {
		if n, isInt := wholeNumber(v); isInt && n > 0 && n <= math.MaxInt64/adapterTokenBytes {
			errs = appendErr(errs, setFromAdapter(raw, "cache.backend_tokens.max_size", int(n*adapterTokenBytes), "exchange", "cache_max_bytes"))
		} else {
			errs = append(errs, fmt.Errorf("cache.backend_tokens.max_size: want a whole number of tokens > 0"))
		}
	}
	return errs
}

// adapterSection removes section from raw and returns it with the problems
// of its keys; nil when the file has no such section.
func adapterSection(raw map[string]any, section string, known []string) (map[string]any, []error) {
	v, present := raw[section]
	if !present {
		return nil, nil
	}
	delete(raw, section)
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, []error{fmt.Errorf("%s: want a section (%s)", section, strings.Join(known, ", "))}
	}
	return m, unknownKeys(section, m, known)
}

func unknownKeys(path string, m map[string]any, known []string) []error {
	var errs []error
	for _, k := range sortedKeys(m) {
		if !slices.Contains(known, k) {
			errs = append(errs, fmt.Errorf("%w (this Okta MCP adapter section takes %s)", unknownKey(path+"."+k, k, known), strings.Join(known, ", ")))
		}
	}
	return errs
}

// setFromAdapter sets the mcpgw key segs to val, unless the file sets it too.
func setFromAdapter(raw map[string]any, from string, val any, segs ...string) error {
	if getRaw(raw, segs...) != nil {
		return fmt.Errorf("%s: %s is set too; keep one of them", from, strings.Join(segs, "."))
	}
	return setRaw(raw, segs, val)
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// dropEntryNames removes backends.<key>.name / backend_name and
// agents.<key>.name / agent_name when they repeat the entry's key, as the
// adapter's files and admin API write them. One that names another entry
// is an error: which name counts would be a guess.
func dropEntryNames(raw map[string]any) []error {
	var errs []error
	for _, section := range []string{"backends", "agents"} {
		entries, _ := raw[section].(map[string]any)
		for _, key := range sortedKeys(entries) {
			entry, _ := entries[key].(map[string]any)
			for _, field := range adapterEntryNames[section] {
				v, ok := entry[field]
				if !ok {
					continue
				}
				if s, _ := v.(string); s != key {
					errs = append(errs, fmt.Errorf("%s.%s.%s: %v is not the entry's key %q; the key under %s: is its name", section, key, field, v, key, section))
					continue
				}
				delete(entry, field)
			}
		}
	}
	return errs
}

// wholeNumber reads an integer as YAML or an environment variable gives it.
func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64:
		return int64(n), n == math.Trunc(n) && math.Abs(n) < 1<<53
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// adapterDuration reads "1h"-style durations and plain seconds.
func adapterDuration(v any) (time.Duration, error) {
	if n, ok := wholeNumber(v); ok {
		return time.Duration(n) * time.Second, nil
	}
	s, _ := v.(string)
	return time.ParseDuration(strings.TrimSpace(s))
}

// adapterEnvRefused are the adapter's variables that mean something mcpgw
// does not do; each is refused with what to do instead.
var adapterEnvRefused = map[string]string{
	"OKTA_CLIENT_ID":         oktaClientHint,
	"OKTA_CLIENT_SECRET":     oktaClientHint,
	"ADMIN_USERNAME":         adminLoginHint,
	"ADMIN_PASSWORD":         adminLoginHint,
	"ADMIN_JWT_SECRET":       adminLoginHint,
	"ADMIN_TOKEN_EXPIRATION": adminLoginHint,
}

const (
	oktaClientHint = "mcpgw has no Okta client of its own: each agent's OAuth client goes in agents.<name>.client_id (and client_secret); unset it"
	adminLoginHint = "the admin API (/admin/v1, /api/admin) takes a bearer token from your identity provider and data.mcp.admin.allow decides; there is no admin password or login: unset it"
)

// applyAdapterEnv honours the Okta MCP adapter's variables. They sit above
// the file and below MCPGW_*. The issuer they name is added only when
// neither the file nor MCPGW_* configure issuers; when those do, a
// different OKTA_* issuer is an error rather than silently dropped.
func applyAdapterEnv(raw map[string]any, vars map[string]string, overrides []envOverride) []error {
	var errs []error
	for _, name := range sortedKeys(adapterEnvRefused) {
		if strings.TrimSpace(vars[name]) != "" {
			errs = append(errs, fmt.Errorf("%s: %s", name, adapterEnvRefused[name]))
		}
	}
	if v, ok := vars["PROTECTED_DISCOVERY"]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes", "":
		case "false", "0", "no":
			errs = append(errs, fmt.Errorf("PROTECTED_DISCOVERY: mcpgw never serves an MCP request without a verified token (tools/list included); unset it"))
		default:
			errs = append(errs, fmt.Errorf("PROTECTED_DISCOVERY: want true (mcpgw always requires a token) or unset"))
		}
	}
	errs = append(errs, applyAdapterIssuer(raw, vars, overrides)...)
	if v := vars["GATEWAY_BASE_URL"]; v != "" {
		_ = setRaw(raw, []string{"server", "public_url"}, v)
	}
	errs = appendErr(errs, setListenPart(raw, vars, "GATEWAY_HOST"))
	errs = appendErr(errs, setListenPart(raw, vars, "GATEWAY_PORT"))
	if v := vars["LOG_LEVEL"]; v != "" {
		_ = setRaw(raw, []string{"log", "level"}, v)
	}
	return errs
}

// setListenPart replaces the host (GATEWAY_HOST) or the port (GATEWAY_PORT)
// of server.listen, keeping the other part.
func setListenPart(raw map[string]any, vars map[string]string, name string) error {
	v := strings.TrimSpace(vars[name])
	if v == "" {
		return nil
	}
	host, port := defaultListenHost, "8000"
	if listen, ok := getRaw(raw, "server", "listen").(string); ok {
		if h, p, err := net.SplitHostPort(listen); err == nil {
			host, port = h, p
		}
	}
	if name == "GATEWAY_HOST" {
		if strings.ContainsAny(v, "/: ") && net.ParseIP(v) == nil {
			return fmt.Errorf("GATEWAY_HOST: want a host name or IP address")
		}
		host = v
	} else {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("GATEWAY_PORT: must be a port number between 1 and 65535")
		}
		port = v
	}
	return setRaw(raw, []string{"server", "listen"}, net.JoinHostPort(host, port))
}

// applyAdapterIssuer turns OKTA_* into an identity.issuers entry.
func applyAdapterIssuer(raw map[string]any, vars map[string]string, overrides []envOverride) []error {
	iss, err := adapterIssuer(vars)
	if err != nil {
		return []error{err}
	}
	if iss == nil {
		return nil
	}
	name := "OKTA_DOMAIN"
	if vars["OKTA_ISSUER"] != "" {
		name = "OKTA_ISSUER"
	}
	fromEnv, envIssuers := mcpgwIssuers(overrides)
	configured, _ := getRaw(raw, "identity", "issuers").([]any)
	if fromEnv || len(configured) > 0 {
		// The same issuer configured in full: nothing is lost.
		if slices.Contains(envIssuers, iss["issuer"].(string)) {
			return nil
		}
		for _, c := range configured {
			if m, _ := c.(map[string]any); m != nil && m["issuer"] == iss["issuer"] {
				return nil
			}
		}
		return []error{fmt.Errorf("%s: names issuer %v, but identity.issuers (file or MCPGW_*) configures others and wins; unset %s or add the issuer there", name, iss["issuer"], name)}
	}
	_ = setRaw(raw, []string{"identity", "issuers"}, []any{iss})
	return nil
}

// adapterIssuer is the issuer the adapter's variables name:
//
//   - OKTA_ISSUER: that (custom) authorization server;
//   - OKTA_DOMAIN with OKTA_AUTHORIZATION_SERVER_ID: the org's custom server
//     https://<domain>/oauth2/<id>;
//   - OKTA_DOMAIN alone: the org authorization server https://<domain>, with
//     the adapter's audience rule (agent_audiences: a token's aud or cid is
//     an agent's client_id), since its tokens carry no API audience.
//
// A custom server's tokens must carry OKTA_AUDIENCE (default api://default,
// Okta's default server's audience). nil when no variable names an issuer.
func adapterIssuer(vars map[string]string) (map[string]any, error) {
	issuer := strings.TrimRight(strings.TrimSpace(vars["OKTA_ISSUER"]), "/")
	domain := strings.TrimSpace(vars["OKTA_DOMAIN"])
	serverID := strings.TrimSpace(vars["OKTA_AUTHORIZATION_SERVER_ID"])
	audiences := splitList(vars["OKTA_AUDIENCE"])
	if issuer == "" && domain == "" {
		for _, name := range []string{"OKTA_AUTHORIZATION_SERVER_ID", "OKTA_AUDIENCE"} {
			if strings.TrimSpace(vars[name]) != "" {
				return nil, fmt.Errorf("%s: needs OKTA_DOMAIN (or OKTA_ISSUER) to name the Okta org", name)
			}
		}
		return nil, nil
	}
	custom := issuer != "" || serverID != ""
	if issuer == "" {
		base, err := oktaOrgURL(domain)
		if err != nil {
			return nil, err
		}
		issuer = base
		if serverID != "" {
			issuer = base + "/oauth2/" + serverID
		}
	}
	if !custom {
		iss := map[string]any{"issuer": issuer, "agent_audiences": true}
		if len(audiences) > 0 {
			iss["audiences"] = audiences
		}
		return iss, nil
	}
	if len(audiences) == 0 {
		audiences = []any{"api://default"}
	}
	return map[string]any{"issuer": issuer, "audiences": audiences}, nil
}

// oktaOrgURL is https://<domain>. The adapter took a bare host name; a
// scheme written out is kept (http only makes sense for a local test IdP).
func oktaOrgURL(domain string) (string, error) {
	scheme := "https://"
	for _, s := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(domain, s); ok {
			scheme, domain = s, rest
		}
	}
	domain = strings.TrimRight(domain, "/")
	if domain == "" || strings.ContainsAny(domain, "/?# ") {
		return "", fmt.Errorf("OKTA_DOMAIN: want the Okta org's host name, such as acme.okta.com (for a custom authorization server set OKTA_AUTHORIZATION_SERVER_ID or OKTA_ISSUER)")
	}
	return scheme + domain, nil
}
