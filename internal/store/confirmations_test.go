package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A question is answered once, only by its owner, only while open, from
// any handle of the database; concurrent answers: exactly one is kept.
func testConfirmations(t *testing.T, b dbUnderTest) {
	ctx := context.Background()
	s := openTest(t, b.newDSN(t))
	now := time.Now()
	if err := s.AskConfirmation(ctx, "q1", "sess alice", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ConfirmationAnswer(ctx, "q1"); err != nil || a != "" {
		t.Fatalf("open question: %q %v", a, err)
	}
	if ok, err := s.AnswerConfirmation(ctx, "q1", "sess mallory", "accept", now); err != nil || ok {
		t.Fatalf("another owner's answer taken: %v %v", ok, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for _, answer := range []string{"accept", "decline", "cancel", "accept", "decline", "cancel", "accept", "decline"} {
		wg.Go(func() {
			ok, err := s.AnswerConfirmation(ctx, "q1", "sess alice", answer, now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d answers kept, want 1", won)
	}
	if a, err := s.ConfirmationAnswer(ctx, "q1"); err != nil || a == "" {
		t.Fatalf("answered question: %q %v", a, err)
	}
	if err := s.AskConfirmation(ctx, "q2", "sess alice", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AnswerConfirmation(ctx, "q2", "sess alice", "accept", now); ok {
		t.Fatal("an expired question took an answer")
	}
	if err := s.ForgetConfirmation(ctx, "q1", now); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"q1", "q2"} {
		if _, err := s.ConfirmationAnswer(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after forget: %v", id, err)
		}
	}
}
