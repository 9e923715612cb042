package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
)

// The raw configuration map is checked against the Config struct's koanf
// tags by reflection, so the struct stays the single source of truth for
// which keys exist; no separate key list can drift from it.

var (
	durationType = reflect.TypeFor[time.Duration]()
	backendType  = reflect.TypeFor[Backend]()
	agentType    = reflect.TypeFor[Agent]()
)

// fieldType returns the type of the struct field whose koanf tag is key.
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := koanfTag(f); tag != "" && tag == key {
			return f.Type, true
		}
	}
	return nil, false
}

func koanfTag(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	return tag
}

func structKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if tag := koanfTag(t.Field(i)); tag != "" {
			keys = append(keys, tag)
		}
	}
	return keys
}

// childType is the Go type addressed by one more path segment below t, or
// nil when t is free-form (map[string]any, any) or seg does not exist.
func childType(t reflect.Type, seg string) reflect.Type {
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if ft, ok := fieldType(t, seg); ok {
			return ft
		}
	case reflect.Map:
		return t.Elem()
	case reflect.Slice:
		if _, err := strconv.Atoi(seg); err == nil {
			return t.Elem()
		}
	}
	return nil
}

// typeAt walks segs from the Config type.
func typeAt(segs []string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, s := range segs {
		if t = childType(t, s); t == nil {
			return nil
		}
	}
	return t
}

// checkRaw reports unknown keys (typo protection) everywhere, inside
// backends and agents too (a timout_seconds that passed would leave the
// default in force unnoticed), and durations written as bare numbers, which
// the decoder would silently read as nanoseconds.
func checkRaw(raw map[string]any) []error {
	var errs []error
	walkRaw(raw, reflect.TypeFor[Config](), "", &errs)
	return errs
}

func walkRaw(v any, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		if isNumber(v) {
			*errs = append(*errs, fmt.Errorf("%s: want a duration with a unit, such as \"30s\" or \"50ms\"", path))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return // the decoder reports the type mismatch
		}
		for _, k := range sortedKeys(m) {
			ft, known := fieldType(t, k)
			if !known {
				*errs = append(*errs, unknownKeyIn(t, joinPath(path, k), k))
				continue
			}
			walkRaw(m[k], ft, joinPath(path, k), errs)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, k := range sortedKeys(m) {
			walkRaw(m[k], t.Elem(), joinPath(path, k), errs)
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return
		}
		for i, item := range l {
			walkRaw(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	}
}

// unknownKeyIn reports key, unknown in the section of type t: with what to
// write instead when it is an Okta MCP adapter key mcpgw does not take.
func unknownKeyIn(t reflect.Type, path, key string) error {
	if hint, ok := adapterKeyHints[t][key]; ok {
		return fmt.Errorf("%s: %s", path, hint)
	}
	return unknownKey(path, key, structKeys(t))
}

func unknownKey(path, key string, known []string) error {
	best, bestDist := "", 3
	for _, k := range known {
		if d := levenshtein.ComputeDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Errorf("%s: unknown key (did you mean %q?)", path, best)
	}
	return fmt.Errorf("%s: unknown key", path)
}

// isNumber reports a non-zero number; zero is the same in every unit.
func isNumber(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return !rv.IsZero()
	}
	return false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
