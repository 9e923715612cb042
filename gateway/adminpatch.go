package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/mergepatch"
	"github.com/mcpgw/mcpgw/internal/store/configjson"
)

// handlePatch changes some fields of an entry: the body is an RFC 7396 JSON
// merge patch over the entry as GET shows it (members set, null removes),
// so a caller changes what it names and nothing else. The merged entry is
// then written as a PUT of it would be: the secrets GET hides are kept
// where the patch does not touch them (and only while the destination they
// were given for stays), and the same checks, authorization and audit apply.
func (r *resource[T]) handlePatch(c *fiber.Ctx) error {
	w, ok := r.beginChange(c, true)
	if !ok {
		return nil
	}
	defer w.unlock()
	var patch map[string]any
	if err := json.Unmarshal(c.Body(), &patch); err != nil || patch == nil {
		return invalid(c, []string{"request body: a merge patch must be a JSON object naming the fields to change (null removes one)"})
	}
	body, err := r.patched(*w.old, patch)
	if err != nil {
		return r.api.internal(c, "patch "+r.plural+"."+w.name, err)
	}
	ae, created, answered := r.save(c, w.p, w.d, w.name, body, w.old)
	if answered {
		return nil
	}
	return r.answerSaved(c, ae, created)
}

// patched is the body of the PUT that patch amounts to over stored: the
// entry as GET shows it (secrets as the redaction marker, which the PUT
// rules turn back into the stored values), merged with patch. A member the
// patch removes is sent as null, so that the PUT clears it rather than
// keeping an omitted secret.
func (r *resource[T]) patched(stored T, patch map[string]any) ([]byte, error) {
	shown, err := r.shown(stored)
	if err != nil {
		return nil, err
	}
	merged, _ := mergepatch.Apply(shown, patch).(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		if patch[k] == nil {
			merged[k] = nil
		}
	}
	return json.Marshal(merged)
}

// shown is an entry as GET shows it, decoded as JSON.
func (r *resource[T]) shown(v T) (map[string]any, error) {
	b, err := configjson.Marshal(r.redact(v))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// guardAgent refuses a write that would change who the agent is without
// saying so. An agent's client_id binds it to one OAuth client; a PUT that
// leaves it out (the old full-replace semantics silently dropped it) would
// let tokens of every client use the agent, so removing it needs
// ?unbind=true. Leaving agent_id out would change the X-Agent-ID value to
// the entry's name under every client configured with the old one.
func guardAgent(path string, sent map[string]json.RawMessage, v, old *config.Agent, unbind bool) []string {
	var problems []string
	if old.ClientID != "" && v.ClientID == "" && !unbind {
		problems = append(problems, fmt.Sprintf("%s.client_id: this write removes the agent's client binding (client_id %q), after which tokens of any client could use it; send client_id to keep it (PATCH changes only the fields it names), or add ?unbind=true to remove it", path, old.ClientID))
	}
	if _, present := sent["agent_id"]; !present && old.AgentID != "" && old.AgentID != old.Name {
		problems = append(problems, fmt.Sprintf("%s.agent_id: left out, it would change from %q to %q (the entry's name); send agent_id (PATCH changes only the fields it names)", path, old.AgentID, old.Name))
	}
	return problems
}
