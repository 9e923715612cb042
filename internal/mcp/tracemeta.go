package mcp

import (
	"slices"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

// traceMetaKeys are the params._meta members that carry W3C trace context
// in MCP, unprefixed (the OpenTelemetry MCP conventions and SEP-414).
var traceMetaKeys = []string{"traceparent", "tracestate", "baggage"}

// SetTraceMeta writes trace context (W3C keys from a propagator's carrier)
// into params._meta of a request or notification, replacing what the
// client put there: the backend's span is the gateway's child, not the
// client's. It is called before the message is decided, so the reading
// the policy sees and the bytes the backend gets are the same.
//
// A message is left as it is (and false returned) when writing could make
// it ambiguous or change more than _meta: it has no params object (adding
// params where there were none changes what a strict server validates),
// its _meta is not an object, or params holds a name that folds onto
// "_meta" without being it (ParseBody refuses such a name already; a Go
// server would bind both to one field).
// Members of _meta whose names fold onto a trace key are dropped for the
// same reason.
func (m *Message) SetTraceMeta(carrier map[string]string) bool {
	if len(carrier) == 0 || (m.Kind != KindRequest && m.Kind != KindNotification) || m.Params.Kind != ijson.Object {
		return false
	}
	metaAt := -1
	for i, mem := range m.Params.Members {
		switch {
		case mem.Name == "_meta":
			metaAt = i
		case ijson.Fold(mem.Name) == ijson.Fold("_meta"):
			return false
		}
	}
	meta := ijson.Value{Kind: ijson.Object}
	if metaAt >= 0 {
		if m.Params.Members[metaAt].Value.Kind != ijson.Object {
			return false
		}
		meta = m.Params.Members[metaAt].Value
	}

	members := make([]ijson.Member, 0, len(meta.Members)+len(carrier))
	for _, mem := range meta.Members {
		if !foldsOntoTraceKey(mem.Name) {
			members = append(members, mem)
		}
	}
	for _, k := range traceMetaKeys {
		if v, ok := carrier[k]; ok && v != "" {
			members = append(members, ijson.Member{Name: k, Value: ijson.Value{Kind: ijson.String, Str: v}})
		}
	}
	meta = ijson.Value{Kind: ijson.Object, Members: members}

	params := m.Params
	params.Members = slices.Clone(params.Members)
	if metaAt >= 0 {
		params.Members[metaAt].Value = meta
	} else {
		params.Members = append(params.Members, ijson.Member{Name: "_meta", Value: meta})
	}
	m.Params = params

	v := m.value
	v.Members = slices.Clone(v.Members)
	for i := range v.Members {
		if v.Members[i].Name == "params" {
			v.Members[i].Value = params
		}
	}
	m.value = v
	return true
}

func foldsOntoTraceKey(name string) bool {
	f := ijson.Fold(name)
	for _, k := range traceMetaKeys {
		if f == ijson.Fold(k) {
			return true
		}
	}
	return false
}
