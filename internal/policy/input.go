package policy

import (
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The input is handed to OPA as a lazy AST object over plain Go maps: a
// field is converted when a rule first reads it, and most rules read few.
// Building a full AST object costs more than evaluating the shipped policy
// (every term is hashed on construction), and rego.EvalInput(map) costs
// several times that (FIELD-NOTES).
//
// Every value put in these maps is of a type ast.InterfaceToValue converts
// natively; caller-supplied maps that are not (jsonShaped) are converted
// eagerly, so a bad value is an error here, never a panic during evaluation.

// callInput is the input of one decision: the whole contract.
func callInput(in *Input) (ast.Value, error) {
	v, _, err := plainCallInput(in)
	return v, err
}

// plainCallInput is callInput with the caller's part (callerPart).
func plainCallInput(in *Input) (ast.Value, map[string]any, error) {
	args, err := anyObject(in.MCP.Arguments)
	if err != nil {
		return nil, nil, fmt.Errorf("input mcp.arguments: %w", err)
	}
	return callInputWith(in, args)
}

// probedCallInput is plainCallInput with each argument's value behind a
// probe that records whether the evaluation read it (argsprobe.go).
func probedCallInput(in *Input) (ast.Value, map[string]any, *argumentReads, error) {
	args, err := anyObject(in.MCP.Arguments)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("input mcp.arguments: %w", err)
	}
	reads := &argumentReads{}
	probed, err := probedArguments(args, reads)
	if err != nil {
		return nil, nil, nil, err
	}
	v, caller, err := callInputWith(in, probed)
	return v, caller, reads, err
}

func callInputWith(in *Input, args any) (ast.Value, map[string]any, error) {
	catalog := in.Tools
	if in.MCP.Method == "tools/call" {
		// The contract gives a call the called tool's catalog entry only; a
		// gateway handing over its whole catalog must not make every call
		// cost what listing a thousand tools costs.
		catalog = calledEntries(in.Tools, in.MCP.Tool)
	}
	tools, err := toolList(catalog)
	if err != nil {
		return nil, nil, err
	}
	prompts, err := promptList(in.Prompts)
	if err != nil {
		return nil, nil, err
	}
	return buildInputWithCaller(in, in.MCP.Tool, args, tools, resourceList(in.Resources), prompts)
}

// listInput is the input of a visibility query: the per-call fields
// (mcp.tool, mcp.arguments) are blanked and only the listed kind is kept, so
// that the cache key (listKey) covers everything the policy can read.
func listInput(in *Input, kind ListKind) (ast.Value, error) {
	var tools, resources, prompts any = []any{}, []any{}, []any{}
	switch kind {
	case ListTools:
		t, err := toolList(in.Tools)
		if err != nil {
			return nil, err
		}
		tools = t
	case ListResources:
		resources = resourceList(in.Resources)
	case ListPrompts:
		p, err := promptList(in.Prompts)
		if err != nil {
			return nil, err
		}
		prompts = p
	default:
		return nil, fmt.Errorf("unknown list kind %q", kind)
	}
	return buildInput(in, "", map[string]any{}, tools, resources, prompts)
}

// catalogInput is listInput with the items of a prepared catalog.
func catalogInput(in *Input, c *Catalog) (ast.Value, error) {
	var tools, resources, prompts any = []any{}, []any{}, []any{}
	switch c.kind {
	case ListTools:
		tools = c.items
	case ListResources:
		resources = c.items
	case ListPrompts:
		prompts = c.items
	}
	return buildInput(in, "", map[string]any{}, tools, resources, prompts)
}

func buildInput(in *Input, tool string, args, tools, resources, prompts any) (ast.Value, error) {
	v, _, err := buildInputWithCaller(in, tool, args, tools, resources, prompts)
	return v, err
}

// buildInputWithCaller is buildInput that also returns the caller's part
// of the input (callerPart).
func buildInputWithCaller(in *Input, tool string, args, tools, resources, prompts any) (ast.Value, map[string]any, error) {
	caller, err := callerPart(in)
	if err != nil {
		return nil, nil, err
	}
	doc := map[string]any{
		"mcp": map[string]any{
			"kind":             in.MCP.Kind,
			"method":           in.MCP.Method,
			"tool":             tool,
			"arguments":        args,
			"protocol_version": in.MCP.ProtocolVersion,
		},
		"http":      httpMap(&in.HTTP),
		"tools":     tools,
		"resources": resources,
		"prompts":   prompts,
	}
	for k, v := range caller {
		doc[k] = v
	}
	return ast.LazyObject(doc), caller, nil
}

// callerPart is the part of the input about the caller (callerFields):
// version, token, agent and backend, as the input holds them.
func callerPart(in *Input) (map[string]any, error) {
	token, err := tokenMap(&in.Token)
	if err != nil {
		return nil, err
	}
	agent := map[string]any{
		"id":                      in.Agent.ID,
		"client_id":               in.Agent.ClientID,
		"issuer":                  in.Agent.Issuer,
		"allow_clientless_tokens": in.Agent.AllowClientlessTokens,
		"enabled":                 in.Agent.Enabled,
		"backend_access":          nonNil(in.Agent.BackendAccess),
	}
	// An agent that sets no scopes has none in the input (the token's
	// scopes decide); one with an empty list has an empty list (none).
	if in.Agent.Scopes != nil {
		agent["scopes"] = in.Agent.Scopes
	}
	return map[string]any{
		"version": in.Version,
		"token":   token,
		"agent":   agent,
		"backend": map[string]any{
			"name":           in.Backend.Name,
			"auth_type":      in.Backend.AuthType,
			"labels":         labelMap(in.Backend.Labels),
			"tool_integrity": integrityMode(in.Backend.ToolIntegrity),
		},
	}, nil
}

// adminInput is the input of data.mcp.admin.allow.
func adminInput(in *AdminInput) (ast.Value, error) {
	token, err := tokenMap(&in.Token)
	if err != nil {
		return nil, err
	}
	return ast.LazyObject(map[string]any{
		"version": in.Version,
		"token":   token,
		"http":    httpMap(&in.HTTP),
		"admin":   adminRequest(&in.Admin),
	}), nil
}

func adminRequest(a *AdminRequest) map[string]any {
	m := map[string]any{"action": a.Action, "kind": a.Kind, "name": a.Name}
	if t := a.Target; t != nil {
		m["target"] = map[string]any{"url": t.URL, "host": t.Host, "address_class": t.AddressClass}
	}
	return m
}

func tokenMap(t *TokenInput) (map[string]any, error) {
	claims, err := anyObject(t.Claims)
	if err != nil {
		return nil, fmt.Errorf("input token.claims: %w", err)
	}
	m := map[string]any{
		"sub":       t.Sub,
		"iss":       t.Iss,
		"aud":       nonNil(t.Aud),
		"client_id": t.ClientID,
		"scopes":    nonNil(t.Scopes),
		"groups":    nonNil(t.Groups),
		"claims":    claims,
	}
	if t.Via != "" {
		m["via"] = t.Via
	}
	return m, nil
}

func httpMap(h *HTTPInput) map[string]any {
	return map[string]any{"method": h.Method, "path": h.Path, "remote_addr": h.RemoteAddr}
}

// calledEntries returns the catalog entries of the called tool, without
// copying in the usual case of one.
func calledEntries(tools []Tool, name string) []Tool {
	for i := range tools {
		if tools[i].Name != name {
			continue
		}
		if !slices.ContainsFunc(tools[i+1:], func(t Tool) bool { return t.Name == name }) {
			return tools[i : i+1]
		}
		return slices.DeleteFunc(slices.Clone(tools[i:]), func(t Tool) bool { return t.Name != name })
	}
	return nil
}

// toolList is input.tools: every entry has name, annotations, title,
// description and inputSchema ("" and {} when the backend sent none, so
// rules need no defaults); outputSchema and integrity only when known.
func toolList(tools []Tool) ([]any, error) {
	out := make([]any, len(tools))
	for i := range tools {
		t := &tools[i]
		entry := map[string]any{"name": t.Name, "title": t.Title, "description": t.Description}
		for _, f := range []struct {
			key string
			m   map[string]any
		}{{"annotations", t.Annotations}, {"inputSchema", t.InputSchema}, {"outputSchema", t.OutputSchema}} {
			if f.m == nil && f.key == "outputSchema" {
				continue
			}
			v, err := anyObject(f.m)
			if err != nil {
				return nil, fmt.Errorf("input tools[%d].%s: %w", i, f.key, err)
			}
			entry[f.key] = v
		}
		addIntegrity(entry, t.Integrity)
		out[i] = entry
	}
	return out, nil
}

func resourceList(resources []Resource) []any {
	out := make([]any, len(resources))
	for i, r := range resources {
		entry := map[string]any{"uri": r.URI, "name": r.Name, "description": r.Description}
		addIntegrity(entry, r.Integrity)
		out[i] = entry
	}
	return out
}

func promptList(prompts []Prompt) ([]any, error) {
	out := make([]any, len(prompts))
	for i, p := range prompts {
		entry := map[string]any{"name": p.Name, "title": p.Title, "description": p.Description, "arguments": []any{}}
		if len(p.Arguments) > 0 {
			v, err := ast.InterfaceToValue(p.Arguments)
			if err != nil {
				return nil, fmt.Errorf("input prompts[%d].arguments: %w", i, err)
			}
			entry["arguments"] = v
		}
		addIntegrity(entry, p.Integrity)
		out[i] = entry
	}
	return out, nil
}

// addIntegrity adds an entry's classification as
// {"status": ..., "changed": [...], "rejected": bool}.
func addIntegrity(entry map[string]any, in *Integrity) {
	if in == nil {
		return
	}
	entry["integrity"] = map[string]any{"status": in.Status, "changed": nonNil(in.Changed), "rejected": in.Rejected}
}

// integrityMode is input.backend.tool_integrity: "off" when unset, so a
// rule never meets "".
func integrityMode(m string) string {
	if m == "" {
		return "off"
	}
	return m
}

// anyObject passes a caller-supplied map on: as is when every value in it
// is JSON-shaped, else converted now. nil becomes {} so that rules never
// meet null where the contract promises an object.
func anyObject(m map[string]any) (any, error) {
	if len(m) == 0 {
		return map[string]any{}, nil
	}
	if jsonShaped(m, 0) {
		return m, nil
	}
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// jsonShaped reports whether v holds only types that ast.InterfaceToValue
// converts without a JSON round trip (and so cannot fail on), nested at
// most 32 deep. json.Number is left to the eager path: its text may not be
// a number.
func jsonShaped(v any, depth int) bool {
	if depth > 32 {
		return false
	}
	switch x := v.(type) {
	case nil, bool, string, float64, int, int64:
		return true
	case []string:
		return true
	case []any:
		for _, e := range x {
			if !jsonShaped(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !jsonShaped(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

func labelMap(labels map[string]string) map[string]string {
	if labels == nil {
		return map[string]string{}
	}
	return labels
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
