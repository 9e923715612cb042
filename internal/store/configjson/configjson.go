// Package configjson encodes config objects (config.Agent, config.Backend) as
// JSON objects keyed by their YAML (koanf) names: the shape the store persists
// and audit records show.
//
// The config types carry koanf tags but no json tags, and encoding/json would
// key them by Go field names ("ClientSecret"). Keying by the koanf names keeps
// stored rows readable by operators and stable under Go renames, and reading
// the tags by reflection (rather than a hand-kept mapping) means a field added
// to a config type is persisted without anyone remembering to add it here.
package configjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// Marshal encodes the struct v (or pointer to one) as a JSON object whose keys
// are the fields' koanf names. Fields tagged koanf:"-" and zero-valued fields
// are left out.
func Marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, fmt.Errorf("configjson: marshal nil %s", rv.Type())
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("configjson: marshal %s: not a struct", rv.Type())
	}
	obj := make(map[string]json.RawMessage)
	for _, f := range fieldsOf(rv.Type()) {
		fv := rv.Field(f.index)
		if fv.IsZero() {
			continue
		}
		b, err := json.Marshal(fv.Interface())
		if err != nil {
			return nil, fmt.Errorf("configjson: marshal field %s: %w", f.key, err)
		}
		obj[f.key] = b
	}
	return json.Marshal(obj)
}

// Unmarshal decodes a JSON object written by Marshal into the struct that v
// points to. Unknown keys are ignored so that rows written by a newer version
// still load. Numbers inside untyped values (auth_config) come back as int
// when integral, float64 otherwise, as the YAML loader produces them, rather
// than encoding/json's float64 for every number.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("configjson: unmarshal into %T: need a non-nil pointer to a struct", v)
	}
	rv = rv.Elem()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("configjson: unmarshal %s: %w", rv.Type(), err)
	}
	for _, f := range fieldsOf(rv.Type()) {
		raw, ok := obj[f.key]
		if !ok {
			continue
		}
		fv := rv.Field(f.index)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		ptr := reflect.New(fv.Type())
		if err := dec.Decode(ptr.Interface()); err != nil {
			return fmt.Errorf("configjson: unmarshal field %s: %w", f.key, err)
		}
		fv.Set(normalizeNumbers(ptr.Elem()))
	}
	return nil
}

type field struct {
	index int
	key   string
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(sf.Tag.Get("koanf"), ",")
		switch key {
		case "-":
			continue
		case "":
			// koanf matches untagged fields by their lower-cased name.
			key = strings.ToLower(sf.Name)
		}
		out = append(out, field{index: i, key: key})
	}
	return out
}

// normalizeNumbers replaces json.Number values held in interface-typed places
// (any, map[string]any, []any, nested) with int or float64.
func normalizeNumbers(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		inner := normalizeAny(v.Interface())
		out := reflect.New(v.Type()).Elem()
		out.Set(reflect.ValueOf(inner))
		return out
	case reflect.Map:
		if v.IsNil() || v.Type().Elem().Kind() != reflect.Interface {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), normalizeNumbers(iter.Value()))
		}
		return out
	case reflect.Slice:
		if v.IsNil() || v.Type().Elem().Kind() != reflect.Interface {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(normalizeNumbers(v.Index(i)))
		}
		return out
	default:
		return v
	}
}

func normalizeAny(x any) any {
	switch t := x.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[k] = normalizeAny(v)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = normalizeAny(v)
		}
		return out
	default:
		return x
	}
}
