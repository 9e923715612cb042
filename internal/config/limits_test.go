package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ratelimit.*, audit.* and server.stream_write_timeout: defaults, file and
// environment values, and what validation refuses.
func TestLimitKeys(t *testing.T) {
	type got struct {
		Requests, Sessions int
		RedisURL, Prefix   string
		RedisTimeout       time.Duration
		FailOpen           bool
		Overflow           string
		BlockTimeout       time.Duration
		StreamWrite        time.Duration
	}
	defaults := got{Requests: 600, Sessions: 60, Prefix: "mcpgw:ratelimit:", RedisTimeout: time.Second,
		Overflow: "block", BlockTimeout: 5 * time.Second, StreamWrite: time.Minute}
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    got
		wantErr []string
	}{
		{name: "defaults", yaml: minimal, want: defaults},
		{
			name: "from the file",
			yaml: minimal + `
server: {stream_write_timeout: 10s}
ratelimit: {requests_per_minute: 0, sessions_per_minute: 5, redis_url: "redis://127.0.0.1:6379/2", redis_key_prefix: "gw1:", redis_timeout: 250ms, fail_open: true}
audit: {on_overflow: drop, block_timeout: 2s}
`,
			want: got{Requests: 0, Sessions: 5, RedisURL: "redis://127.0.0.1:6379/2", Prefix: "gw1:", RedisTimeout: 250 * time.Millisecond,
				FailOpen: true, Overflow: "drop", BlockTimeout: 2 * time.Second, StreamWrite: 10 * time.Second},
		},
		{
			name:    "from the environment",
			yaml:    minimal,
			environ: []string{"MCPGW_RATELIMIT__REQUESTS_PER_MINUTE=100", "MCPGW_RATELIMIT__REDIS_URL=rediss://:pw@redis.internal:6380", "MCPGW_AUDIT__ON_OVERFLOW=drop"},
			want: func() got {
				g := defaults
				g.Requests, g.RedisURL, g.Overflow = 100, "rediss://:pw@redis.internal:6380", "drop"
				return g
			}(),
		},
		{
			name: "invalid",
			yaml: minimal + `
server: {stream_write_timeout: -1s}
ratelimit: {requests_per_minute: -1, sessions_per_minute: -5, redis_url: "http://:secret@127.0.0.1:6379", redis_timeout: -1s}
audit: {on_overflow: discard, block_timeout: -1s}
`,
			wantErr: []string{
				"server.stream_write_timeout: must be > 0",
				"ratelimit.requests_per_minute: must be >= 0",
				"ratelimit.sessions_per_minute: must be >= 0",
				"ratelimit.redis_url: must be redis://",
				"ratelimit.redis_timeout: must be > 0",
				`audit.on_overflow: unknown "discard"`,
				"audit.block_timeout: must be > 0",
			},
		},
		{
			name:    "a typo is an unknown key",
			yaml:    minimal + "ratelimit: {request_per_minute: 5}\n",
			wantErr: []string{`ratelimit.request_per_minute: unknown key (did you mean "requests_per_minute"?)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.yaml), tt.environ)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("missing %q in:\n%v", w, err)
					}
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("an error shows the Redis password:\n%v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			r := c.RateLimit
			g := got{r.RequestsPerMinute, r.SessionsPerMinute, r.RedisURL, r.RedisKeyPrefix, r.RedisTimeout, r.FailOpen,
				c.Audit.Overflow(), c.Audit.BlockLimit(), c.Server.StreamWriteLimit()}
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got  %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

// A config built in code (tests, embedders) leaves the new keys zero: the
// limits are off and the stream and audit waits take their defaults.
func TestLimitKeysZeroValues(t *testing.T) {
	var c Config
	if c.Server.StreamWriteLimit() != DefaultStreamWriteTimeout || c.Audit.Overflow() != AuditOverflowBlock || c.Audit.BlockLimit() != DefaultAuditBlockTimeout {
		t.Fatalf("zero values: stream %v, overflow %q, block %v", c.Server.StreamWriteLimit(), c.Audit.Overflow(), c.Audit.BlockLimit())
	}
}

// The Redis URL's password never shows when the configuration is printed.
func TestRedisURLRedacted(t *testing.T) {
	c := mustLoad(t, writeConfig(t, minimal+"ratelimit: {redis_url: \"redis://mcpgw:hunter2@redis.internal:6379/0\"}\n"))
	for _, out := range []string{c.String(), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("printed config shows the Redis password: %s", out)
		}
		if !strings.Contains(out, "redis.internal:6379") {
			t.Fatalf("printed config hides the Redis host: %s", out)
		}
	}
}
