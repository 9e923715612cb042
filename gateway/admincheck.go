package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/store/configjson"
)

// What an admin write must pass before it is stored: a body with known
// keys and types, and a candidate topology that builds without conflicts.

// candidate is the store's current topology as a config, for validating a
// change against everything else before it is written.
func (a *adminAPI) candidate(ctx context.Context) (*config.Config, error) {
	backends, agents, err := loadTopology(ctx, a.s.Store)
	if err != nil {
		return nil, err
	}
	// The trusted issuers come along so that an agent's issuer is checked
	// as in the config file (a client_id needs one when several are
	// trusted). Cloned: Validate normalizes in place.
	// The oauth section comes along for what it says about them: the paths
	// its endpoints own, and the agents its registration rules name.
	cfg := a.s.Gateway.opts.Config
	issuers := slices.Clone(cfg.Identity.Issuers)
	return &config.Config{Backends: backends, Agents: agents, Identity: config.Identity{Issuers: issuers},
		Server: config.Server{PublicURL: cfg.Server.PublicURL}, OAuth: cfg.OAuth}, nil
}

// topologyProblems validates a candidate's agents and backends exactly as
// the config file's are validated (config.Validate is the one validator of
// the topology: the file at start, every admin write here), normalizing
// them in place; what other sections say about them (oauth's reserved
// paths and registration rules) counts too. Validate
// checks the whole file; a candidate holds only agents and backends, so what
// it says about the other sections is not about this change.
func topologyProblems(cand *config.Config) []string {
	err := cand.Validate()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range unjoin(err) {
		if msg := e.Error(); strings.HasPrefix(msg, "backends.") || strings.HasPrefix(msg, "agents.") || strings.HasPrefix(msg, "oauth.registration.") {
			out = append(out, msg)
		}
	}
	return out
}

func agentConflicts(cand *config.Config, name string) []string {
	a, ok := cand.Agents[name]
	if !ok {
		// Deleted: the authorization server's registration must not be
		// left binding new clients to nothing.
		var out []string
		if cand.OAuth.Enabled {
			for i, r := range cand.OAuth.Registration.Rules {
				if r.Agent == name {
					out = append(out, fmt.Sprintf("agents.%s: still named by oauth.registration.rules[%d].agent; change the config file first", name, i))
				}
			}
			if cand.OAuth.Registration.DefaultAgent == name {
				out = append(out, fmt.Sprintf("agents.%s: still oauth.registration.default_agent; change the config file first", name))
			}
		}
		return out
	}
	var out []string
	for _, other := range slices.Sorted(maps.Keys(cand.Agents)) {
		if other != name && cand.Agents[other].ID() == a.ID() {
			out = append(out, fmt.Sprintf("agents.%s.agent_id: %q is already the id of agents.%s", name, a.ID(), other))
		}
	}
	return out
}

func backendConflicts(cand *config.Config, name string) []string {
	var out []string
	b, ok := cand.Backends[name]
	if !ok {
		for _, an := range slices.Sorted(maps.Keys(cand.Agents)) {
			for i, bn := range cand.Agents[an].BackendAccess {
				if bn == name {
					out = append(out, fmt.Sprintf("backends.%s: still granted by agents.%s.backend_access[%d]; remove the grant first", name, an, i))
				}
			}
		}
		return out
	}
	for i, p := range b.Paths {
		cp := canonicalPath(p)
		if reserved, ok := reservedRoute(cp); ok {
			out = append(out, fmt.Sprintf("backends.%s.paths[%d]: %q is the gateway's own route %s", name, i, p, reserved))
		}
		for _, other := range slices.Sorted(maps.Keys(cand.Backends)) {
			if other == name {
				continue
			}
			for j, op := range cand.Backends[other].Paths {
				if canonicalPath(op) == cp {
					out = append(out, fmt.Sprintf("backends.%s.paths[%d]: %q is already routed to backends.%s (paths[%d])", name, i, p, other, j))
				}
			}
		}
	}
	return out
}

// decodeBody reads a PUT body, a JSON object keyed like a config.yaml entry,
// into v. It returns the fields as sent, so that secret handling can tell an
// omitted field from an emptied one, and one problem per bad field.
func decodeBody(path, name string, body []byte, v any) (map[string]json.RawMessage, []string) {
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(body, &sent); err != nil || sent == nil {
		kind, _, _ := strings.Cut(path, ".")
		desc := "must be a JSON object shaped like an entry of " + kind + ": in config.yaml"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			desc = fmt.Sprintf("invalid JSON at byte %d", se.Offset)
		}
		return nil, []string{"request body: " + desc}
	}
	known := configKeys(reflect.TypeOf(v).Elem())
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(sent)) {
		if k == "name" {
			var s string
			if json.Unmarshal(sent[k], &s) != nil || s != name {
				problems = append(problems, fmt.Sprintf("%s.name: must be %q, the name in the URL", path, name))
			}
			continue
		}
		if !slices.Contains(known, k) {
			problems = append(problems, unknownField(path, k, known))
			continue
		}
		// One field at a time, so that an error names its field.
		one, err := json.Marshal(map[string]json.RawMessage{k: sent[k]})
		if err == nil {
			err = configjson.Unmarshal(one, v)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s.%s: %s", path, k, typeProblem(err)))
		}
	}
	return sent, problems
}

// configKeys lists the keys of a config struct as configjson names them
// (koanf tags; untagged fields by their lower-cased name), so that a field
// added to config.Agent or config.Backend is accepted here without an edit.
func configKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		switch key {
		case "-":
			continue
		case "":
			key = strings.ToLower(f.Name)
		}
		keys = append(keys, key)
	}
	return keys
}

func unknownField(path, key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := levenshtein.ComputeDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("%s.%s: unknown field (did you mean %q?)", path, key, best)
	}
	return fmt.Sprintf("%s.%s: unknown field (want one of %s)", path, key, strings.Join(known, ", "))
}

func typeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got a JSON %s", jsonTypeName(te.Type), te.Value)
	}
	return "invalid value"
}

func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(jsonTypeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}
