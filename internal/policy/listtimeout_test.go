package policy

import (
	"testing"
	"time"
)

func TestListTimeoutGrowsWithTheList(t *testing.T) {
	e := &Engine{listTimeout: 500 * time.Millisecond}
	for _, tc := range []struct {
		listed int
		want   time.Duration
	}{
		{0, 500 * time.Millisecond},
		{1000, 500 * time.Millisecond},
		{2000, time.Second},
		{100000, 50 * time.Second},
	} {
		if got := e.listTimeoutFor(tc.listed); got != tc.want {
			t.Errorf("listTimeoutFor(%d) = %v, want %v", tc.listed, got, tc.want)
		}
	}
}
