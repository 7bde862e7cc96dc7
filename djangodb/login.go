package djangodb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Login writes the django_session row that Django's login() writes for
// the auth_user row with primary key pk (ModelBackend, the db session
// engine), signed with cfg's SECRET_KEY, and returns its session key, the
// value of the session cookie. flagproxy itself never writes to a
// database: Login serves `flagproxy demo` (logging in as a sample user)
// and tests.
func Login(ctx context.Context, db *sqlx.DB, dialect Dialect, cfg SessionConfig, pk string, ttl time.Duration) (string, error) {
	if cfg.SecretKey == "" {
		return "", errors.New("login: no SECRET_KEY")
	}
	var password string
	if err := db.GetContext(ctx, &password, db.Rebind(`SELECT password FROM auth_user WHERE id = ?`), pk); err != nil {
		return "", fmt.Errorf("login: user %s: %w", pk, err)
	}
	hash := hex.EncodeToString(saltedHMAC(authHashSalt, []byte(password), cfg.SecretKey, sha256Alg))
	now := time.Now()
	data := dumps(map[string]any{"_auth_user_id": pk, "_auth_user_backend": backendModel, "_auth_user_hash": hash},
		"django.contrib.sessions.SessionStore", cfg.SecretKey, now)
	var b [20]byte
	_, _ = rand.Read(b[:])
	key := hex.EncodeToString(b[:])[:32]
	var expires any = now.Add(ttl)
	if dialect == SQLite {
		loc := time.UTC
		if !cfg.UseTZ && cfg.TimeZone != nil {
			loc = cfg.TimeZone
		}
		expires = pythonDatetime(now.Add(ttl).In(loc))
	}
	_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)`), key, data, expires)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	return key, nil
}

// dumps is django.core.signing.dumps without compression: what Django
// writes into django_session.session_data.
func dumps(obj map[string]any, salt, secret string, at time.Time) string {
	data, _ := json.Marshal(obj) // maps of strings always encode
	text := base64.RawURLEncoding.EncodeToString(data) + ":" + base62String(at.Unix())
	return text + ":" + base64.RawURLEncoding.EncodeToString(saltedHMAC(salt+"signer", []byte(text), secret, sha256Alg))
}

// base62String is django.utils.baseconv.base62.encode of a positive n.
func base62String(n int64) string {
	if n <= 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 62 {
		b = append([]byte{base62Alphabet[n%62]}, b...)
	}
	return string(b)
}
