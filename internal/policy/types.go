// Package policy embeds OPA: it loads policies and bundles through OPA's
// plugin manager, prepares the gateway's queries once per compiler change and
// evaluates them with a prebuilt input. Every failure denies (fail closed).
package policy

import (
	"context"
	"time"
)

// InputVersion is the version of the policy input contract (input.version).
const InputVersion = 1

// Input is the policy input contract (input.version 1), documented in
// README.md's policy guide: keep the two in step.
//
// The gateway decides everything that reaches a backend, not only JSON-RPC
// requests: mcp.kind says what is decided (KindRequest, KindNotification,
// KindResponse, KindStream or KindClose) and http.method how it arrived.
// Rules key on mcp.kind, never on the text of mcp.method: a JSON-RPC request
// may be called "GET". An empty kind is what inputs written before the field
// existed hold; the shipped policy reads it as "request".
type Input struct {
	Version int          `json:"version"`
	Token   TokenInput   `json:"token"`
	Agent   AgentInput   `json:"agent"`
	Backend BackendInput `json:"backend"`
	MCP     MCPInput     `json:"mcp"`
	HTTP    HTTPInput    `json:"http"`
	// Tools, Resources and Prompts carry the backend's catalog entries the
	// decision is about: the listed items for visibility, the called tool's
	// entry for tools/call (so readOnlyHint is known).
	Tools     []Tool     `json:"tools"`
	Resources []Resource `json:"resources,omitempty"`
	Prompts   []Prompt   `json:"prompts,omitempty"`
}

type TokenInput struct {
	Sub      string         `json:"sub"`
	Iss      string         `json:"iss"`
	Aud      []string       `json:"aud"`
	ClientID string         `json:"client_id"`
	Scopes   []string       `json:"scopes"`
	Groups   []string       `json:"groups"`
	Claims   map[string]any `json:"claims"`
	// Via is the gateway's own authorization server when it issued the
	// token (oauth.enabled); absent otherwise. Such a token's agent was
	// bound when its client registered, so client_id is the registered
	// client, not the agent's client at the IdP.
	Via string `json:"via,omitempty"`
}

type AgentInput struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	// Issuer is the issuer whose tokens the agent takes ("" for any
	// trusted issuer); AllowClientlessTokens whether a token proving no
	// OAuth client may use it. The gateway enforces both before the policy
	// runs; they are here so the policy's caller rules can say the same.
	Issuer                string `json:"issuer"`
	AllowClientlessTokens bool   `json:"allow_clientless_tokens"`
	Enabled               bool   `json:"enabled"`
	// Scopes nil (absent or null) means the agent sets none and the
	// token's scopes decide; empty means the agent may use none.
	Scopes        []string `json:"scopes"`
	BackendAccess []string `json:"backend_access"`
}

type BackendInput struct {
	Name     string            `json:"name"`
	AuthType string            `json:"auth_type"`
	Labels   map[string]string `json:"labels"`
	// ToolIntegrity is the backend's tool_integrity mode: off, observe,
	// enforce or trust_on_first_use ("" reads as off).
	ToolIntegrity string `json:"tool_integrity"`
}

// Values of MCPInput.Kind.
const (
	// KindRequest is a JSON-RPC request; mcp.method is its method.
	KindRequest = "request"
	// KindNotification is a JSON-RPC notification; mcp.method is its method.
	KindNotification = "notification"
	// KindResponse is a client's JSON-RPC response (result or error) to a
	// server-initiated request (sampling, elicitation, roots); mcp.method is "".
	KindResponse = "response"
	// KindStream is an HTTP GET opening the session's server-to-client SSE
	// stream; mcp.method is "GET".
	KindStream = "stream"
	// KindClose is an HTTP DELETE ending the session; mcp.method is "DELETE".
	KindClose = "close"
)

type MCPInput struct {
	// Kind is what is decided: one of KindRequest, KindNotification,
	// KindResponse, KindStream, KindClose ("" reads as KindRequest in the
	// shipped policy).
	Kind string `json:"kind"`
	// Method is the JSON-RPC method of a request or notification, "" for a
	// response, "GET" for a stream and "DELETE" for a close.
	Method string `json:"method"`
	// Tool is params.name of tools/call and prompts/get, params.uri of resources/read.
	Tool            string         `json:"tool"`
	Arguments       map[string]any `json:"arguments"`
	ProtocolVersion string         `json:"protocol_version"`
}

type HTTPInput struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	RemoteAddr string `json:"remote_addr"`
}

// Tool is one catalog entry: what the backend lists of the tool, so the
// policy can judge its definition (description, schemas), and, when the
// backend's tool_integrity is not off, the definition's classification.
type Tool struct {
	Name        string         `json:"name"`
	Annotations map[string]any `json:"annotations"`
	Title       string         `json:"title,omitempty"`
	Description string         `json:"description,omitempty"`
	// InputSchema and OutputSchema are the schemas as listed (JSON-shaped;
	// numbers as json.Number); nil when absent.
	InputSchema  map[string]any `json:"inputSchema,omitempty"`
	OutputSchema map[string]any `json:"outputSchema,omitempty"`
	Integrity    *Integrity     `json:"integrity,omitempty"`
}

// Integrity classifies a listed definition against the approved one
// (README, Tool integrity).
type Integrity struct {
	// Status is approved, new or changed.
	Status string `json:"status"`
	// Changed names the definition fields that differ from the approved
	// definition (status changed).
	Changed []string `json:"changed,omitempty"`
	// Rejected: an administrator rejected exactly this definition.
	Rejected bool `json:"rejected,omitempty"`
}

// Resource is a listed resource, or a resource template (URI is then the
// template; only templates carry Integrity).
type Resource struct {
	URI         string     `json:"uri"`
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Integrity   *Integrity `json:"integrity,omitempty"`
}

type Prompt struct {
	Name        string     `json:"name"`
	Title       string     `json:"title,omitempty"`
	Description string     `json:"description,omitempty"`
	Arguments   []any      `json:"arguments,omitempty"`
	Integrity   *Integrity `json:"integrity,omitempty"`
}

// Decision is the result of data.mcp.gateway.decision plus what the gateway
// records about the evaluation.
type Decision struct {
	ID      string   `json:"decision_id"`
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
	// Status is the HTTP status the policy asks for on a transport-level
	// denial (403 with insufficient_scope); 0 means a per-message denial.
	Status int `json:"status,omitempty"`
	// Scope is the scope the caller lacks, for WWW-Authenticate.
	Scope    string `json:"scope,omitempty"`
	Revision string `json:"revision"`
	// Elapsed is not encoded as it is: JSON would print bare nanoseconds.
	// Printed decisions carry it in microseconds (EvalDecision), the unit of
	// the audit trail's eval_us.
	Elapsed time.Duration `json:"-"`
	// Obligations are what an allow requires besides forwarding (redact
	// the result, count a rate limit); nil when the policy names none.
	Obligations *Obligations `json:"obligations,omitempty"`
	// Record is the decision's record, not yet sent to the decision log,
	// when Options.CallerRecordsDecisions: the caller completes it with
	// what happened next (latency, outcome) and hands it to Engine.Record.
	Record *Record `json:"-"`
}

// ListKind names which catalog a visibility query filters.
type ListKind string

const (
	ListTools     ListKind = "tools"
	ListResources ListKind = "resources"
	ListPrompts   ListKind = "prompts"
)

// Authorizer is what the request path asks. Implementations never return an
// allow on error: every failure is a deny Decision with the reason.
type Authorizer interface {
	// Decide evaluates data.mcp.gateway.decision for one request to a
	// backend: a JSON-RPC message, a GET stream or a DELETE (in.MCP.Kind).
	Decide(ctx context.Context, in *Input) Decision
	// VisibleCatalog returns the names (URIs for resources) the caller may
	// see in a catalog prepared once per backend list, so repeated lists cost
	// a cache lookup. An error hides everything.
	VisibleCatalog(ctx context.Context, in *Input, c *Catalog) (map[string]bool, error)
}

// AdminInput is the input of data.mcp.admin.allow for one admin API call.
type AdminInput struct {
	Version int          `json:"version"`
	Token   TokenInput   `json:"token"`
	HTTP    HTTPInput    `json:"http"`
	Admin   AdminRequest `json:"admin"`
}

// AdminRequest says what an admin API call wants to do.
type AdminRequest struct {
	// Action is list, get, write (a PUT, whether it creates or updates:
	// the decision must not depend on what exists) or delete.
	Action string `json:"action"`
	// Kind is the collection acted on (agents, backends, audit, ...).
	Kind string `json:"kind"`
	// Name is the object within Kind; empty for list.
	Name string `json:"name"`
	// Target is where a backend write points, for the policy to judge;
	// nil (absent from the input) for every other call.
	Target *AdminTarget `json:"target,omitempty"`
}

// AdminTarget is the destination of a backend write: its url (secrets in
// it redacted), the url's host and the class of the addresses it resolves
// to: loopback, private, link-local, metadata, public or unresolved (the
// most dangerous one when a name has several).
type AdminTarget struct {
	URL          string `json:"url"`
	Host         string `json:"host"`
	AddressClass string `json:"address_class"`
}
