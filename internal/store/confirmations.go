package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Confirmations keeps the questions of the confirm obligation until their
// answers arrive, on whichever replica (the gateway's confirm.go).
type Confirmations interface {
	// AskConfirmation records question id of owner (the asking session
	// and subject), open until expires.
	AskConfirmation(ctx context.Context, id, owner string, expires time.Time) error
	// AnswerConfirmation records answer for id when owner asked it, it is
	// still open at now and not yet answered; false otherwise (an answer
	// is never replaced).
	AnswerConfirmation(ctx context.Context, id, owner, answer string, now time.Time) (bool, error)
	// ConfirmationAnswer is id's answer, "" while there is none; wrapped
	// ErrNotFound once the question is gone.
	ConfirmationAnswer(ctx context.Context, id string) (string, error)
	// ForgetConfirmation removes id and every question expired at now.
	ForgetConfirmation(ctx context.Context, id string, now time.Time) error
}

func (s *sqlStore) AskConfirmation(ctx context.Context, id, owner string, expires time.Time) error {
	if id == "" || owner == "" {
		return errors.New("store: ask confirmation: id and owner are required")
	}
	if _, err := s.db.ExecContext(ctx, "INSERT INTO confirmations (id, owner, expires_us) VALUES ($1, $2, $3)",
		id, owner, expires.UnixMicro()); err != nil {
		return fmt.Errorf("store: ask confirmation: %w", err)
	}
	return nil
}

func (s *sqlStore) AnswerConfirmation(ctx context.Context, id, owner, answer string, now time.Time) (bool, error) {
	if answer == "" {
		return false, errors.New("store: answer confirmation: empty answer")
	}
	res, err := s.db.ExecContext(ctx, "UPDATE confirmations SET answer = $1 WHERE id = $2 AND owner = $3 AND answer = '' AND expires_us > $4",
		answer, id, owner, now.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("store: answer confirmation: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: answer confirmation: %w", err)
	}
	return n == 1, nil
}

func (s *sqlStore) ConfirmationAnswer(ctx context.Context, id string) (string, error) {
	var answer string
	err := s.db.QueryRowContext(ctx, "SELECT answer FROM confirmations WHERE id = $1", id).Scan(&answer)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("store: confirmation %s: %w", id, ErrNotFound)
	case err != nil:
		return "", fmt.Errorf("store: confirmation: %w", err)
	}
	return answer, nil
}

func (s *sqlStore) ForgetConfirmation(ctx context.Context, id string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM confirmations WHERE id = $1 OR expires_us <= $2", id, now.UnixMicro()); err != nil {
		return fmt.Errorf("store: forget confirmation: %w", err)
	}
	return nil
}
