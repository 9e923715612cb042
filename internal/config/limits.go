package config

import (
	"net/url"
	"time"
)

// RateLimit bounds how much one caller (an issuer+subject) may use the
// gateway. Counters are per replica unless RedisURL is set, when every
// replica using the same server and prefix shares them.
type RateLimit struct {
	// RequestsPerMinute bounds the JSON-RPC messages (each member of a
	// batch counts) plus GET streams and DELETEs of one caller. 0 turns
	// the limit off (a config built in code leaves it off; Load's default
	// is DefaultRequestsPerMinute).
	RequestsPerMinute int `koanf:"requests_per_minute"`
	// SessionsPerMinute bounds the initialize requests of one caller (each
	// may open a backend session). 0 turns the limit off.
	SessionsPerMinute int `koanf:"sessions_per_minute"`
	// RedisURL (redis://[user:password@]host:port[/db], rediss:// for TLS)
	// shares the counters between replicas. Empty: each replica counts in
	// its own memory, so N replicas allow up to N times the limits.
	RedisURL string `koanf:"redis_url"`
	// RedisKeyPrefix starts every counter key (default "mcpgw:ratelimit:").
	RedisKeyPrefix string `koanf:"redis_key_prefix"`
	// RedisTimeout bounds one check against Redis (default 1s).
	RedisTimeout time.Duration `koanf:"redis_timeout"`
	// FailOpen lets requests through, unlimited, while Redis cannot be
	// reached. Off (the default), they are refused with 503: a limit an
	// attacker can switch off by overloading Redis is no limit.
	FailOpen bool `koanf:"fail_open"`
}

// Defaults that Load applies to ratelimit.
const (
	DefaultRequestsPerMinute = 600
	DefaultSessionsPerMinute = 60
	DefaultRedisKeyPrefix    = "mcpgw:ratelimit:"
	DefaultRedisTimeout      = time.Second
)

// Audit says what happens when the audit trail cannot keep up.
type Audit struct {
	// OnOverflow is "block" (the default) or "drop". Either way a record
	// of an allowed call waits for queue space: the call it records has
	// reached, or is about to reach, a backend. Under "block" every other
	// record (denials, refusals, shadow disagreements) waits too; under
	// "drop" they are dropped when the queue is full, counted
	// (mcpgw_audit_records_dropped_total), logged at most once a minute
	// and reported by /readyz for a minute.
	OnOverflow string `koanf:"on_overflow"`
	// BlockTimeout bounds one wait for queue space; a record still waiting
	// then is dropped and counted like any other (default 5s).
	BlockTimeout time.Duration `koanf:"block_timeout"`
	// RecordInputs keeps each call decision's policy input in its record,
	// masked by the policy's system.log.mask rules, for `mcpgw policy
	// replay` (default false).
	RecordInputs bool `koanf:"record_inputs"`
	// InputRetention is how long a recorded input is kept; the store then
	// clears it and keeps the record. 0 keeps it as long as the record.
	// Default DefaultAuditInputRetention.
	InputRetention time.Duration `koanf:"input_retention"`
	// Stdout also writes every record as one JSON line to standard output
	// (a container's log collector ships it), besides the store.
	Stdout bool `koanf:"stdout"`
	// HTTP also posts records, in batches, to a collector (a SIEM).
	HTTP AuditHTTP `koanf:"http"`
}

// AuditHTTP is an HTTP collector of audit records: batches are POSTed as a
// JSON array, as OPA's decision-log plugin posts its events, and retried
// with backoff on 408, 429, 5xx and network errors.
type AuditHTTP struct {
	// URL is empty: no collector.
	URL string `koanf:"url"`
	// Headers are added to every POST (Authorization for the collector);
	// their values are secrets, never printed or logged.
	Headers map[string]string `koanf:"headers"`
	Gzip    bool              `koanf:"gzip"`
}

// DefaultAuditInputRetention is audit.input_retention when unset.
const DefaultAuditInputRetention = 168 * time.Hour

// Audit overflow modes.
const (
	AuditOverflowBlock = "block"
	AuditOverflowDrop  = "drop"
)

// DefaultAuditBlockTimeout is audit.block_timeout when unset.
const DefaultAuditBlockTimeout = 5 * time.Second

// DefaultClockSkew is identity.clock_skew when unset. Set, 0 means no
// tolerance at all: only an absent key gets this default (applyDefaults).
const DefaultClockSkew = 30 * time.Second

// DefaultJWKSRefreshInterval is identity.jwks_refresh_interval when unset,
// for the config file and for callers that build config.Identity in code.
const DefaultJWKSRefreshInterval = 15 * time.Minute

// DefaultStreamWriteTimeout is server.stream_write_timeout when unset.
const DefaultStreamWriteTimeout = 60 * time.Second

// StreamWriteLimit is StreamWriteTimeout with the default applied.
func (s Server) StreamWriteLimit() time.Duration {
	if s.StreamWriteTimeout <= 0 {
		return DefaultStreamWriteTimeout
	}
	return s.StreamWriteTimeout
}

// Overflow is OnOverflow with the default applied.
func (a Audit) Overflow() string {
	if a.OnOverflow == "" {
		return AuditOverflowBlock
	}
	return a.OnOverflow
}

// BlockLimit is BlockTimeout with the default applied.
func (a Audit) BlockLimit() time.Duration {
	if a.BlockTimeout <= 0 {
		return DefaultAuditBlockTimeout
	}
	return a.BlockTimeout
}

func (c *Config) validateLimits(v *validator) {
	if c.Server.StreamWriteTimeout < 0 {
		v.addf("server.stream_write_timeout", "must be > 0 (0 means the default, %s)", DefaultStreamWriteTimeout)
	}
	r := c.RateLimit
	if r.RequestsPerMinute < 0 {
		v.addf("ratelimit.requests_per_minute", "must be >= 0 (0 turns the limit off)")
	}
	if r.SessionsPerMinute < 0 {
		v.addf("ratelimit.sessions_per_minute", "must be >= 0 (0 turns the limit off)")
	}
	if r.RedisURL != "" {
		if u, err := url.Parse(r.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			v.addf("ratelimit.redis_url", "must be redis://host:port[/db] or rediss://...")
		}
	}
	if r.RedisTimeout < 0 {
		v.addf("ratelimit.redis_timeout", "must be > 0 (0 means the default, %s)", DefaultRedisTimeout)
	}
	switch c.Audit.OnOverflow {
	case "", AuditOverflowBlock, AuditOverflowDrop:
	default:
		v.addf("audit.on_overflow", "unknown %q (want block or drop)", c.Audit.OnOverflow)
	}
	if c.Audit.BlockTimeout < 0 {
		v.addf("audit.block_timeout", "must be > 0 (0 means the default, %s)", DefaultAuditBlockTimeout)
	}
	if u := c.Audit.HTTP.URL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			v.addf("audit.http.url", "must be an absolute http(s) URL")
		}
	} else if len(c.Audit.HTTP.Headers) > 0 || c.Audit.HTTP.Gzip {
		v.addf("audit.http.url", "required when audit.http.headers or gzip is set")
	}
	if c.Audit.InputRetention < 0 {
		v.addf("audit.input_retention", "must be >= 0 (0 keeps recorded inputs as long as their records)")
	} else if c.Audit.InputRetention > 0 && c.Audit.InputRetention < time.Minute {
		v.addf("audit.input_retention", "must be at least 1m or 0 (keep as long as the record), got %s", c.Audit.InputRetention)
	}
}
