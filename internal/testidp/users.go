package testidp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// User is a person who can sign in at the authorization endpoint's login
// form (the authorization code flow). Tokens issued for the user carry
// Subject as sub and the user's groups at the time they are issued, so a
// refresh after SetUserGroups carries the new groups.
type User struct {
	// Username and Password are what the login form takes; both required.
	Username string
	Password string
	// Subject is the sub claim (default Username).
	Subject string
	// Email and Name become the email and name claims of ID tokens and
	// userinfo; empty ones are left out.
	Email string
	Name  string
	// Groups is the groups claim of access tokens, ID tokens and userinfo.
	Groups []string
}

type userRegistry struct {
	mu     sync.RWMutex
	byName map[string]User
}

func newUserRegistry() *userRegistry { return &userRegistry{byName: map[string]User{}} }

// put adds or replaces u, refusing a subject another username already has:
// a subject names one person.
func (r *userRegistry) put(u User) error {
	if u.Username == "" {
		return errors.New("user: Username is required")
	}
	if u.Password == "" {
		return fmt.Errorf("user %s: Password is required", u.Username)
	}
	if u.Subject == "" {
		u.Subject = u.Username
	}
	u.Groups = slices.Clone(u.Groups)
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, other := range r.byName {
		if name != u.Username && other.Subject == u.Subject {
			return fmt.Errorf("user %s: subject %s is already user %s's", u.Username, u.Subject, name)
		}
	}
	r.byName[u.Username] = u
	return nil
}

func (r *userRegistry) get(username string) (User, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	u, ok := r.byName[username]
	u.Groups = slices.Clone(u.Groups)
	return u, ok
}

func (r *userRegistry) bySubject(sub string) (User, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, u := range r.byName {
		if u.Subject == sub {
			u.Groups = slices.Clone(u.Groups)
			return u, true
		}
	}
	return User{}, false
}

// check returns the user whose username and password these are. The
// password is compared even for an unknown username, in constant time, so
// the answer's timing does not tell which usernames exist.
func (r *userRegistry) check(username, password string) (User, bool) {
	u, ok := r.get(username)
	match := subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1
	return u, ok && match
}

func (r *userRegistry) setGroups(username string, groups []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.byName[username]
	if !ok {
		return false
	}
	u.Groups = slices.Clone(groups)
	r.byName[username] = u
	return true
}

// AddUser adds or replaces a user who can sign in at the login form.
func (s *Server) AddUser(u User) error {
	if err := s.users.put(u); err != nil {
		return fmt.Errorf("testidp: %w", err)
	}
	return nil
}

// SetUserGroups replaces a user's groups. Tokens already issued keep the
// groups they carry; the next refresh, and userinfo, give the new ones.
func (s *Server) SetUserGroups(username string, groups []string) error {
	if !s.users.setGroups(username, groups) {
		return fmt.Errorf("testidp: set groups: no user %q", username)
	}
	s.log.Info("user groups changed", "username", username, "groups", groups)
	return nil
}
