package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

// Obligations are what an allowing decision requires of the gateway besides
// forwarding the message. They are read strictly: an obligation the gateway
// does not know, or one it cannot carry out as written, denies the call,
// since forwarding without it would do less than the policy demanded.
type Obligations struct {
	// Redact masks parts of the call's result before the client sees it.
	Redact *Redaction `json:"redact,omitempty"`
	// RateLimit counts the call against a budget the policy names.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// Confirm asks the person, through MCP elicitation, before the call
	// is forwarded.
	Confirm *Confirmation `json:"confirm,omitempty"`
}

// Confirmation is the question the client shows its person; only an
// explicit accept lets the call through.
type Confirmation struct {
	Message string `json:"message"`
}

// maxConfirmMessage bounds the text a client is asked to show.
const maxConfirmMessage = 1000

// Redaction masks, in a result (JSON or each SSE event, structured content
// and text alike): the value of every object member named in Fields,
// wherever it stands, and every match of Patterns (RE2) in every string.
type Redaction struct {
	Fields      []string `json:"fields,omitempty"`
	Patterns    []string `json:"patterns,omitempty"`
	Replacement string   `json:"replacement"`
	compiled    []*regexp.Regexp
}

// RateLimit is a budget of Limit calls per Window under Key, counted per
// replica in memory or shared by the replicas in Redis
// (ratelimit.redis_url).
type RateLimit struct {
	Key    string        `json:"key"`
	Limit  int           `json:"limit"`
	Window time.Duration `json:"window"`
}

// DefaultRedaction stands in for what a redact obligation masks.
const DefaultRedaction = "[REDACTED]"

// Bounds that keep a policy from making the gateway's work unbounded.
const (
	maxRedactionRules = 64
	maxPatternLen     = 512
	maxRateWindow     = 24 * time.Hour
)

// parseObligations reads decision.obligations.
func parseObligations(v ast.Value, pc *patternCache) (*Obligations, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("obligations is %s, not an object", ast.ValueName(v))
	}
	var out Obligations
	var errs []error
	obj.Foreach(func(k, val *ast.Term) {
		name, ok := k.Value.(ast.String)
		if !ok {
			errs = append(errs, errors.New("obligations: a key is not a string"))
			return
		}
		var err error
		switch string(name) {
		case "redact":
			out.Redact, err = parseRedaction(val.Value, pc)
		case "rate_limit":
			out.RateLimit, err = parseRateLimit(val.Value)
		case "confirm":
			out.Confirm, err = parseConfirmation(val.Value)
		default:
			err = fmt.Errorf("obligation %q is not one this gateway carries out (redact, rate_limit, confirm)", string(name))
		}
		if err != nil {
			errs = append(errs, err)
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &out, nil
}

func parseRedaction(v ast.Value, pc *patternCache) (*Redaction, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("obligations.redact is %s, not an object", ast.ValueName(v))
	}
	r := &Redaction{Replacement: DefaultRedaction}
	var errs []error
	obj.Foreach(func(k, val *ast.Term) {
		key, _ := k.Value.(ast.String)
		switch string(key) {
		case "fields", "patterns":
			list, err := stringList(val.Value)
			if err != nil {
				errs = append(errs, fmt.Errorf("obligations.redact.%s: %w", string(key), err))
				return
			}
			slices.Sort(list)
			if string(key) == "fields" {
				r.Fields = list
			} else {
				r.Patterns = list
			}
		case "replacement":
			s, ok := val.Value.(ast.String)
			if !ok {
				errs = append(errs, errors.New("obligations.redact.replacement: not a string"))
				return
			}
			r.Replacement = string(s)
		default:
			errs = append(errs, fmt.Errorf("obligations.redact.%s: unknown (fields, patterns, replacement)", string(key)))
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(r.Fields)+len(r.Patterns) == 0 {
		return nil, errors.New("obligations.redact: names no fields and no patterns")
	}
	if len(r.Fields)+len(r.Patterns) > maxRedactionRules {
		return nil, fmt.Errorf("obligations.redact: more than %d fields and patterns", maxRedactionRules)
	}
	for i, p := range r.Patterns {
		if len(p) > maxPatternLen {
			return nil, fmt.Errorf("obligations.redact.patterns[%d]: longer than %d bytes", i, maxPatternLen)
		}
		re, err := pc.compile(p)
		if err != nil {
			return nil, fmt.Errorf("obligations.redact.patterns[%d]: %w", i, err)
		}
		r.compiled = append(r.compiled, re)
	}
	return r, nil
}

func parseRateLimit(v ast.Value) (*RateLimit, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("obligations.rate_limit is %s, not an object", ast.ValueName(v))
	}
	rl := &RateLimit{}
	var errs []error
	obj.Foreach(func(k, val *ast.Term) {
		key, _ := k.Value.(ast.String)
		switch string(key) {
		case "key":
			s, ok := val.Value.(ast.String)
			if !ok || s == "" {
				errs = append(errs, errors.New("obligations.rate_limit.key: want a non-empty string"))
				return
			}
			rl.Key = string(s)
		case "limit":
			n, ok := val.Value.(ast.Number)
			i, isInt := n.Int()
			if !ok || !isInt || i < 1 {
				errs = append(errs, errors.New("obligations.rate_limit.limit: want a whole number of at least 1"))
				return
			}
			rl.Limit = i
		case "window":
			s, ok := val.Value.(ast.String)
			d, err := time.ParseDuration(string(s))
			if !ok || err != nil || d < time.Second || d > maxRateWindow {
				errs = append(errs, fmt.Errorf("obligations.rate_limit.window: want a duration from 1s to %s such as \"1m\"", maxRateWindow))
				return
			}
			rl.Window = d
		default:
			errs = append(errs, fmt.Errorf("obligations.rate_limit.%s: unknown (key, limit, window)", string(key)))
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if rl.Key == "" || rl.Limit == 0 || rl.Window == 0 {
		return nil, errors.New("obligations.rate_limit: key, limit and window are all required")
	}
	return rl, nil
}

func parseConfirmation(v ast.Value) (*Confirmation, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("obligations.confirm is %s, not an object", ast.ValueName(v))
	}
	c := &Confirmation{}
	var errs []error
	obj.Foreach(func(k, val *ast.Term) {
		key, _ := k.Value.(ast.String)
		switch string(key) {
		case "message":
			s, ok := val.Value.(ast.String)
			if !ok || strings.TrimSpace(string(s)) == "" || len(s) > maxConfirmMessage {
				errs = append(errs, fmt.Errorf("obligations.confirm.message: want a non-empty string of at most %d bytes", maxConfirmMessage))
				return
			}
			c.Message = string(s)
		default:
			errs = append(errs, fmt.Errorf("obligations.confirm.%s: unknown (message)", string(key)))
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.Message == "" {
		return nil, errors.New("obligations.confirm: message is required")
	}
	return c, nil
}

// patternCache keeps compiled redaction patterns: a decision is read on
// every call (the decision cache keeps the rule's value, not its reading),
// and compiling a pattern costs more than the rest of the reading.
// Bounded, since a policy may build patterns from its input.
type patternCache struct {
	lru *lru.Cache[string, compiledPattern]
}

type compiledPattern struct {
	re  *regexp.Regexp
	err error
}

func newPatternCache() *patternCache {
	c, _ := lru.New[string, compiledPattern](1024) // fails only for a size <= 0
	return &patternCache{lru: c}
}

// compile compiles p, or finds it compiled; nil compiles every time.
func (pc *patternCache) compile(p string) (*regexp.Regexp, error) {
	if pc != nil {
		if c, ok := pc.lru.Get(p); ok {
			return c.re, c.err
		}
	}
	re, err := regexp.Compile(p)
	if err == nil && re.MatchString("") {
		re, err = nil, errors.New("matches the empty string")
	}
	if pc != nil {
		pc.lru.Add(p, compiledPattern{re: re, err: err})
	}
	return re, err
}

// Apply returns v with the redaction done; v itself is not changed.
func (r *Redaction) Apply(v ijson.Value) ijson.Value {
	switch v.Kind {
	case ijson.String:
		s := v.Str
		for _, re := range r.compiled {
			s = re.ReplaceAllLiteralString(s, r.Replacement)
		}
		if s != v.Str {
			v.Str = s
		}
		return v
	case ijson.Object:
		members := make([]ijson.Member, len(v.Members))
		for i, m := range v.Members {
			if slices.Contains(r.Fields, m.Name) {
				m.Value = ijson.Value{Kind: ijson.String, Str: r.Replacement}
			} else {
				m.Value = r.Apply(m.Value)
			}
			members[i] = m
		}
		v.Members = members
		return v
	case ijson.Array:
		items := make([]ijson.Value, len(v.Items))
		for i, it := range v.Items {
			items[i] = r.Apply(it)
		}
		v.Items = items
		return v
	}
	return v
}

// Redaction is o's redact obligation, or nil; o may be nil.
func (o *Obligations) Redaction() *Redaction {
	if o == nil {
		return nil
	}
	return o.Redact
}

// String names the obligations for a log line or an audit reason.
func (o *Obligations) String() string {
	if o == nil {
		return ""
	}
	var parts []string
	if o.Redact != nil {
		parts = append(parts, fmt.Sprintf("redact(%d fields, %d patterns)", len(o.Redact.Fields), len(o.Redact.Patterns)))
	}
	if o.RateLimit != nil {
		parts = append(parts, fmt.Sprintf("rate_limit(%s: %d per %s)", o.RateLimit.Key, o.RateLimit.Limit, o.RateLimit.Window))
	}
	if o.Confirm != nil {
		parts = append(parts, "confirm")
	}
	return strings.Join(parts, ", ")
}
