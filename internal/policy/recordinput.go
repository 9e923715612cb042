package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maskRule is the rule OPA's decision-log plugin evaluates to mask an event
// (its default decision_logs.mask_decision).
const maskRule = "data.system.log.mask"

// recordedInput is a call decision's input as OPA's decision-log plugin
// would log it: the policy's data.system.log.mask rules are evaluated over
// the event (decision_id, path, input, result, bundles, timestamp) and
// their "remove" and "upsert" operations applied to the input. It returns
// the input as JSON and the pointers the mask erased or replaced; no input
// at all when the mask cannot be evaluated (an input is never kept
// unmasked).
//
// The plugin's own mask code (plugins/logs maskRuleSet) is unexported and
// runs only inside Plugin.Log, which also buffers and ships the event; so
// the rule is evaluated here with a prepared query of the same activation
// family and the JSON-pointer operations are applied as the plugin applies
// them (mask.go in OPA v1.22): a string rule removes, an object rule
// {"op": "remove"|"upsert", "path", "value"} removes or sets; a removal of
// a path that is not there changes nothing and is not listed; an upsert
// creates missing objects on its way. Pointers into /result or
// /nd_builtin_cache do not concern the input and are ignored.
func (e *Engine) recordedInput(ctx context.Context, in *Input, result ast.Value, d Decision) (json.RawMessage, []string) {
	if in == nil {
		return nil, nil
	}
	input, err := callInput(in)
	if err != nil {
		return nil, nil
	}
	event := ast.NewObject(
		ast.Item(ast.InternedTerm("decision_id"), ast.StringTerm(d.ID)),
		ast.Item(ast.InternedTerm("path"), ast.StringTerm(decisionPath)),
		ast.Item(ast.InternedTerm("input"), ast.NewTerm(input)),
		ast.Item(ast.InternedTerm("timestamp"), ast.StringTerm(time.Now().UTC().Format(time.RFC3339Nano))),
		ast.Item(ast.InternedTerm("labels"), ast.NullTerm()),
	)
	if result != nil {
		event.Insert(ast.InternedTerm("result"), ast.NewTerm(result))
	}
	if bundles := e.bundleInfo(d.Revision); len(bundles) > 0 {
		obj := ast.NewObject()
		for name, b := range bundles {
			obj.Insert(ast.StringTerm(name), ast.ObjectTerm(ast.Item(ast.InternedTerm("revision"), ast.StringTerm(b.Revision))))
		}
		event.Insert(ast.InternedTerm("bundles"), ast.NewTerm(obj))
	}
	rs, _, err := e.evaluateWithin(ctx, e.timeout, func(s *snapshot) preparedQuery {
		if s.mask == nil {
			return preparedQuery{}
		}
		return *s.mask
	}, event)
	if err != nil {
		e.logger.Warn("recorded input left out: "+maskRule+" failed", "decision_id", d.ID, "error", err)
		return nil, nil
	}
	var rules ast.Value
	if v, err := resultValue(rs); err == nil {
		rules = v
	} else if !errors.Is(err, errUndefined) {
		e.logger.Warn("recorded input left out: "+maskRule+" failed", "decision_id", d.ID, "error", err)
		return nil, nil
	}
	// Plain JSON values (maps, []any, json.Number), as a decoded request's
	// input is in OPA: ast.JSON may hand back the []string the input was
	// built from, where a pointer into an array would find nothing.
	doc, err := plainJSON(input)
	if err != nil {
		return nil, nil
	}
	masked, err := applyMask(&doc, rules)
	if err != nil {
		e.logger.Warn("recorded input left out: "+maskRule+" is malformed", "decision_id", d.ID, "error", err)
		return nil, nil
	}
	if doc == nil {
		// The whole input was removed: the record keeps no input, only the
		// pointer that says why.
		return nil, masked
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, nil
	}
	return raw, masked
}

// applyMask applies mask rules (the value of data.system.log.mask: a set or
// array of strings and {"op","path","value"} objects) to *input, the
// event's /input, and returns the pointers erased or replaced, in rule order.
func applyMask(input *any, rules ast.Value) ([]string, error) {
	if rules == nil {
		return nil, nil
	}
	raw, err := ast.JSON(rules)
	if err != nil {
		return nil, err
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("want a set or array of rules, got %T", raw)
	}
	var out []string
	for _, item := range list {
		op, path, value := "remove", "", any(nil)
		switch r := item.(type) {
		case string:
			path = r
		case map[string]any:
			if v, ok := r["op"].(string); ok && v != "" {
				op = v
			} else if _, set := r["op"]; set {
				return nil, fmt.Errorf("invalid \"op\" value: %v", r["op"])
			}
			path, _ = r["path"].(string)
			value = r["value"]
		default:
			return nil, fmt.Errorf("invalid mask rule format encountered: %T", item)
		}
		if op != "remove" && op != "upsert" {
			return nil, fmt.Errorf("mask op is not supported: %s", op)
		}
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("mask must be slash-prefixed: %q", path)
		}
		parts := strings.Split(path[1:], "/")
		switch parts[0] {
		case "input":
		case "result", "nd_builtin_cache":
			continue
		default:
			return nil, fmt.Errorf("mask prefix not allowed: %v", parts[0])
		}
		for i, p := range parts {
			// OPA compares the path-escaped form of each segment with the
			// document's keys; the same here.
			if _, err := url.PathUnescape(p); err != nil {
				return nil, err
			}
			parts[i] = url.PathEscape(p)
		}
		name := "/" + strings.Join(parts, "/")
		if *input == nil {
			continue
		}
		if len(parts) == 1 {
			if op == "remove" {
				*input = nil
			} else {
				*input = value
			}
			out = append(out, name)
			continue
		}
		var done bool
		if op == "remove" {
			done = removePointer(input, parts[1:])
		} else {
			done = upsertPointer(*input, parts[1:], value)
		}
		if done {
			out = append(out, name)
		}
	}
	return out, nil
}

// removePointer deletes the member or element at path below *root;
// false when there is none.
func removePointer(root *any, path []string) bool {
	var parent any
	var parentKey string
	node := *root
	for _, p := range path[:len(path)-1] {
		switch v := node.(type) {
		case map[string]any:
			child, ok := v[p]
			if !ok {
				return false
			}
			parent, parentKey, node = v, p, child
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(v) {
				return false
			}
			parent, parentKey, node = v, p, v[i]
		default:
			return false
		}
	}
	last := path[len(path)-1]
	switch v := node.(type) {
	case map[string]any:
		if _, ok := v[last]; !ok {
			return false
		}
		delete(v, last)
		return true
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(v) {
			return false
		}
		shorter := slices.Delete(v, i, i+1)
		switch p := parent.(type) {
		case map[string]any:
			p[parentKey] = shorter
		case []any:
			j, _ := strconv.Atoi(parentKey)
			p[j] = shorter
		case nil:
			*root = shorter
		}
		return true
	}
	return false
}

// upsertPointer sets the member or element at path below node, making the
// objects on its way; false when the path crosses something else.
func upsertPointer(node any, path []string, value any) bool {
	for _, p := range path[:len(path)-1] {
		switch v := node.(type) {
		case map[string]any:
			child, ok := v[p]
			if !ok {
				child = map[string]any{}
				v[p] = child
			}
			node = child
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(v) {
				return false
			}
			node = v[i]
		default:
			return false
		}
	}
	last := path[len(path)-1]
	switch v := node.(type) {
	case map[string]any:
		v[last] = value
		return true
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(v) {
			return false
		}
		v[i] = value
		return true
	}
	return false
}

// plainJSON is v as encoding/json decodes it, with exact numbers.
func plainJSON(v ast.Value) (any, error) {
	native, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(native)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	err = dec.Decode(&doc)
	return doc, err
}
