package main

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"
)

// This file writes what Django's login() leaves in django_session
// (spec/django-sessions.md §1.1, §1.3–1.5, §2.3, §3): djangodb verifies
// these formats but exports no writer, so the benchmark signs its own
// sessions here. signing_test.go checks it against the vectors Django made.

const (
	// dbSessionSalt is the signing salt of the db and cached_db engines:
	// "django.contrib.sessions." + SessionStore.__qualname__.
	dbSessionSalt = "django.contrib.sessions.SessionStore"
	// authHashSalt is get_session_auth_hash's key salt.
	authHashSalt = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
	// modelBackend is the backend login() records.
	modelBackend = "django.contrib.auth.backends.ModelBackend"
)

// saltedHMAC is django.utils.crypto.salted_hmac with SHA-256:
// HMAC-SHA256(SHA256(keySalt || secret), value).
func saltedHMAC(keySalt, value, secret string) []byte {
	k := sha256.Sum256([]byte(keySalt + secret))
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(value))
	return m.Sum(nil)
}

// sign is Signer(key=secret, salt=salt).sign(text).
func sign(text, salt, secret string) string {
	return text + ":" + base64.RawURLEncoding.EncodeToString(saltedHMAC(salt+"signer", text, secret))
}

// base62 is Django's base62 encoding of a timestamp.
func base62(n int64) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b []byte
	for ; n > 0; n /= 62 {
		b = append(b, alphabet[n%62])
	}
	if neg {
		b = append(b, '-')
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// dumps is signing.dumps(obj, key=secret, salt=salt, compress=compress)
// with the JSON serializer, signed at the given time. Keys come out in Go's
// order (sorted), which Django reads the same.
func dumps(obj map[string]any, salt, secret string, at time.Time, compress bool) (string, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	prefix := ""
	if compress {
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		if _, err := w.Write(data); err != nil {
			return "", err
		}
		if err := w.Close(); err != nil {
			return "", err
		}
		if z.Len() < len(data)-1 {
			data, prefix = z.Bytes(), "."
		}
	}
	text := prefix + base64.RawURLEncoding.EncodeToString(data) + ":" + base62(at.Unix())
	return sign(text, salt, secret), nil
}

// sessionAuthHash is AbstractBaseUser.get_session_auth_hash for a stored
// password column.
func sessionAuthHash(password, secret string) string {
	return hex.EncodeToString(saltedHMAC(authHashSalt, password, secret))
}

// loginSessionData is the session_data login() writes for a user logged
// in through ModelBackend.
func loginSessionData(userID, password, secret string, at time.Time) (string, error) {
	return dumps(map[string]any{
		"_auth_user_id":      userID,
		"_auth_user_backend": modelBackend,
		"_auth_user_hash":    sessionAuthHash(password, secret),
	}, dbSessionSalt, secret, at, true)
}
