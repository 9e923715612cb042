package secrets

import (
	"regexp"
	"strings"
)

// Tree returns a deep copy of an auth_config or policy.opa tree that is
// safe to show: every scalar under a key IsSecretKey names is Placeholder
// (at any depth below it too, so a secret object keeps its shape but none
// of its values), every string that LooksSecret is Placeholder whatever its
// key, and every other string loses the secrets a URL carries (URL). Empty
// strings and nulls stay as they are. nil returns nil.
func Tree(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return tree(m, false)
}

func tree(m map[string]any, secret bool) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = value(v, secret || IsSecretKey(k))
	}
	return out
}

func value(v any, secret bool) any {
	switch t := v.(type) {
	case nil:
		return nil
	case map[string]any:
		return tree(t, secret)
	case []any:
		out := make([]any, len(t))
		for i, item := range t {
			out[i] = value(item, secret)
		}
		return out
	case []string:
		out := make([]string, len(t))
		for i, item := range t {
			out[i] = value(item, secret).(string)
		}
		return out
	case string:
		switch {
		case t == "":
			return ""
		case secret || LooksSecret(t):
			return Placeholder
		}
		return URL(t)
	}
	if secret {
		return Placeholder
	}
	return v
}

// dsnPassword finds the password of a PostgreSQL keyword/value DSN.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// DSN returns a store DSN safe to show, in each form the store takes: a
// URL (postgres://…) as URL does (userinfo and query values hidden), a
// PostgreSQL keyword/value DSN with its password hidden, and a SQLite file
// DSN (file:mcpgw.db?_pragma=…) with its query values hidden.
func DSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		return URL(dsn)
	}
	dsn = dsnPassword.ReplaceAllString(dsn, "${1}"+Placeholder)
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		if red, changed := redactQuery(dsn[i+1:]); changed {
			return dsn[:i+1] + red
		}
	}
	return dsn
}
