package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/knadh/koanf/providers/env/v2"
)

const (
	envPrefix = "MCPGW_"
	// envConfigPath names the config file; it is not a config key.
	envConfigPath = "MCPGW_CONFIG"
	// envSessionKey is the documented shortcut for server.session_key.
	envSessionKey = "MCPGW_SESSION_KEY"
)

// envOverride is one MCPGW_* variable turned into a key path.
type envOverride struct {
	name  string
	segs  []string
	value string
}

// envOverrides reads MCPGW_* variables from environ. A double underscore
// separates levels and a single one stays part of the key, so
// MCPGW_BACKENDS__HR-SYSTEM__AUTH_CONFIG__API_KEY is
// backends.hr-system.auth_config.api_key.
func envOverrides(environ []string) ([]envOverride, []error) {
	// Delimiter "" keeps the variables flat: the path split below must not
	// treat a single underscore or a dot as nesting.
	flat, err := env.Provider("", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
	}).Read()
	if err != nil {
		return nil, []error{fmt.Errorf("read %s* environment: %w", envPrefix, err)}
	}
	var (
		out  []envOverride
		errs []error
	)
	for _, name := range sortedKeys(flat) {
		value, _ := flat[name].(string)
		switch name {
		case envConfigPath:
			continue
		case envSessionKey:
			out = append(out, envOverride{name: name, segs: []string{"server", "session_key"}, value: value})
			continue
		}
		segs := strings.Split(strings.ToLower(strings.TrimPrefix(name, envPrefix)), "__")
		if slices.Contains(segs, "") {
			errs = append(errs, fmt.Errorf("%s: empty key segment (use a double underscore only between keys)", name))
			continue
		}
		out = append(out, envOverride{name: name, segs: segs, value: value})
	}
	return out, errs
}

// applyEnvOverrides writes each override into raw. A value aimed at a list
// of strings is split on commas.
func applyEnvOverrides(raw map[string]any, overrides []envOverride) []error {
	var errs []error
	for _, o := range overrides {
		if err := checkEnvPath(o); err != nil {
			errs = append(errs, err)
			continue
		}
		var val any = o.value
		if t := typeAt(o.segs); t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String {
			val = splitList(o.value)
		}
		if err := setRaw(raw, o.segs, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.name, err))
		}
	}
	return errs
}

// checkEnvPath rejects a variable that names no key, so a typo in the
// environment is reported with the variable's name, like a typo in the file.
func checkEnvPath(o envOverride) error {
	t := reflect.TypeFor[Config]()
	path := ""
	for i, seg := range o.segs {
		t = derefType(t)
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := fieldType(t, seg)
			if !ok {
				return fmt.Errorf("%s: %w%s", o.name, unknownKeyIn(t, joinPath(path, seg), seg), nestingHint(o, i, t))
			}
			t, path = ft, joinPath(path, seg)
		case reflect.Map:
			t, path = t.Elem(), joinPath(path, seg)
		case reflect.Slice:
			if _, err := strconv.Atoi(seg); err != nil {
				return fmt.Errorf("%s: %s: want a list index, got %q", o.name, path, seg)
			}
			t, path = t.Elem(), path+"["+seg+"]"
		default:
			return nil // free-form (auth_config, policy.opa) or a scalar the decoder will judge
		}
	}
	return nil
}

// nestingHint spots a single underscore used where a double one nests, as
// in MCPGW_POLICY_TIMEOUT for MCPGW_POLICY__TIMEOUT.
func nestingHint(o envOverride, i int, t reflect.Type) string {
	seg := o.segs[i]
	for j := 1; j < len(seg)-1; j++ {
		if seg[j] != '_' {
			continue
		}
		if _, ok := fieldType(t, seg[:j]); ok {
			fixed := append(slices.Clone(o.segs[:i]), seg[:j], seg[j+1:])
			fixed = append(fixed, o.segs[i+1:]...)
			return fmt.Sprintf("; levels nest with a double underscore: %s%s", envPrefix, strings.ToUpper(strings.Join(fixed, "__")))
		}
	}
	return ""
}

func splitList(s string) []any {
	out := []any{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func setRaw(raw map[string]any, segs []string, val any) error {
	_, err := setPath(raw, reflect.TypeFor[Config](), segs, val)
	return err
}

// setPath sets val at segs below node and returns the (possibly new) node.
// koanf's own Set cannot address list elements (identity.issuers[0].issuer)
// and would split map keys that contain its delimiter, so the raw tree is
// edited here, guided by the Config type where it is known.
func setPath(node any, t reflect.Type, segs []string, val any) (any, error) {
	if len(segs) == 0 {
		return val, nil
	}
	seg := segs[0]
	ct := childType(t, seg)
	switch n := node.(type) {
	case []any:
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i > len(n) {
			return node, fmt.Errorf("list index %q out of range (the list has %d items)", seg, len(n))
		}
		if i == len(n) {
			n = append(n, nil)
		}
		child, err := setPath(n[i], ct, segs[1:], val)
		if err != nil {
			return node, err
		}
		n[i] = child
		return n, nil
	case map[string]any:
		key := matchKey(n, seg)
		child, err := setPath(n[key], ct, segs[1:], val)
		if err != nil {
			return node, err
		}
		n[key] = child
		return n, nil
	}
	// Absent, null or a scalar in the way: build the container the schema expects.
	if t != nil && derefType(t).Kind() == reflect.Slice {
		return setPath([]any{}, t, segs, val)
	}
	return setPath(map[string]any{}, t, segs, val)
}

// matchKey finds seg among m's keys, ignoring case, so an upper-case
// environment variable can reach a map key written in mixed case.
func matchKey(m map[string]any, seg string) string {
	if _, ok := m[seg]; ok {
		return seg
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.EqualFold(k, seg) {
			return k
		}
	}
	return seg
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// getRaw returns the value at segs, or nil if any level is absent.
func getRaw(raw map[string]any, segs ...string) any {
	var node any = raw
	for _, s := range segs {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[s]
	}
	return node
}

// setDefault sets val at segs unless a non-null value is already there.
func setDefault(raw map[string]any, val any, segs ...string) {
	if getRaw(raw, segs...) == nil {
		// Cannot fail: every default path names struct fields and maps only.
		_ = setRaw(raw, segs, val)
	}
}

// envMap turns environ into a lookup table; a later duplicate wins, as it
// does for koanf's env provider.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
