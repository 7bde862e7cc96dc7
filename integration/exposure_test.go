//go:build integration

package integration

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const exposureKey = "exposure-test-key-0123456789"

// exposureEvent is a line of the exposure log, as README.md documents it.
type exposureEvent struct {
	SchemaVersion   int     `json:"schema_version"`
	Time            string  `json:"time"`
	Kind            string  `json:"kind"`
	Flag            string  `json:"flag"`
	Value           bool    `json:"value"`
	Reason          string  `json:"reason"`
	UserID          *string `json:"user_id"`
	VisitorID       *string `json:"visitor_id"`
	SnapshotVersion string  `json:"snapshot_version"`
	Path            string  `json:"path"`
	Status          int     `json:"status"`
}

// TestExposureEventsThroughDjango sends visitors through the flagproxy
// binary to Django with a 50 % waffle flag that --exposure-flags matches
// and one that it does not: each visitor's first request rolls (an event
// without a visitor), the next three carry the session and dwf_ cookies
// (one event for the three, keyed by the documented hash of the session
// cookie, or by the user id once logged in), every value is the side the
// dwf_ cookie and Django got, and no query string reaches the log. Half way
// the log is renamed and flagproxy gets SIGHUP, as logrotate does.
func TestExposureEventsThroughDjango(t *testing.T) {
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		db.Exec(t, `INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
			VALUES ('exp_checkout', NULL, 50.0, ?, ?, ?, ?, '', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
			       ('other_half', NULL, 50.0, ?, ?, ?, ?, '', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`,
			false, false, false, false, false, false, false, false, false, false)
		userID := lastLine(manage(t, db.URL, "shell", "-c",
			`from django.contrib.auth.models import User; print(User.objects.create_user("erin", password="pw").pk)`))
		upstream := django(t, server, db.URL)
		logPath := filepath.Join(t.TempDir(), "exposure.log")
		listen, admin := freeAddr(t), freeAddr(t)
		fp := start(t, "flagproxy", ".", nil, flagproxyBinary(t), "serve", "--listen", listen, "--admin-listen", admin,
			"--upstream", upstream, "--database", db.URL, "--django-settings", settingsFile(t, `, "WAFFLE_SECURE": false`),
			"--exposure-flags", "flag:exp_*", "--exposure-log", logPath, "--exposure-key", exposureKey)
		waitHTTP(t, "http://"+admin+"/readyz", 200, 15*time.Second)
		proxyURL := "http://" + listen

		var want []exposureEvent
		for i := range 7 {
			if i == 3 {
				if err := os.Rename(logPath, logPath+".1"); err != nil {
					t.Fatal(err)
				}
				if err := fp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			first := "/feature_status/" // an anonymous session
			if i == 6 {
				first = "/session/" // a logged-in one
			}
			want = append(want, exposureVisitor(t, proxyURL, first, userID, i == 6)...)
		}
		waitMetric(t, "http://"+admin, "flagproxy_exposure_events_total", float64(len(want)))
		fp.cmd.Process.Signal(os.Interrupt)
		<-fp.done

		got := append(readExposureLog(t, logPath+".1"), readExposureLog(t, logPath)...)
		for i := range got {
			got[i].Time = "" // checked below
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("exposure events (-want +got):\n%s", diff)
		}
		if n := len(readExposureLog(t, logPath)); n == 0 {
			t.Error("after SIGHUP no event went to the new file")
		}
		raw, _ := os.ReadFile(logPath + ".1")
		if strings.Contains(string(raw), "s3cret") {
			t.Errorf("the log holds the query string: %s", raw)
		}
	})
}

// exposureVisitor is one visitor with a cookie jar: a first request to
// first (a roll), then three to /echo/. It returns the events the visitor
// must cause, time left out.
func exposureVisitor(t *testing.T, proxyURL, first, userID string, login bool) []exposureEvent {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	target := first + "?name=z&token=s3cret"
	if login {
		target = first + "?user=" + userID + "&token=s3cret"
	}
	get(t, client, proxyURL+target)
	u, _ := url.Parse(proxyURL)
	cookies := map[string]string{}
	for _, c := range jar.Cookies(u) {
		cookies[c.Name] = c.Value
	}
	side, session := cookies["dwf_exp_checkout"], cookies["sessionid"]
	if (side != "True" && side != "False") || session == "" {
		t.Fatalf("after %s the visitor holds cookies %v, want dwf_exp_checkout and sessionid", first, cookies)
	}
	var version string
	for range 3 {
		var e echo
		if err := json.Unmarshal(get(t, client, proxyURL+"/echo/?token=s3cret"), &e); err != nil {
			t.Fatal(err)
		}
		f := decodeFlags(t, e)
		if f.Flags["exp_checkout"] != (side == "True") {
			t.Fatalf("Django saw exp_checkout=%v, the dwf_ cookie says %s", f.Flags["exp_checkout"], side)
		}
		version = f.Version
	}
	roll := exposureEvent{SchemaVersion: 1, Kind: "flag", Flag: "exp_checkout", Value: side == "True", Reason: "percent-roll",
		SnapshotVersion: version, Path: first, Status: 200}
	seen := roll
	seen.Reason, seen.Path = "percent-cookie", "/echo/"
	if login {
		seen.UserID = &userID
	} else {
		mac := hmac.New(sha256.New, []byte(exposureKey))
		mac.Write([]byte(session))
		id := hex.EncodeToString(mac.Sum(nil)[:16])
		seen.VisitorID = &id
	}
	return []exposureEvent{roll, seen}
}

// get fetches u with client and returns the body of a 200 answer.
func get(t *testing.T, client *http.Client, u string) []byte {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	return body
}

// readExposureLog parses the lines of an exposure log, checking each
// line's time.
func readExposureLog(t *testing.T, path string) []exposureEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []exposureEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev exposureEvent
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("%s: line %q: %v", filepath.Base(path), sc.Text(), err)
		}
		if at, err := time.Parse(time.RFC3339, ev.Time); err != nil || !strings.HasSuffix(ev.Time, "Z") || time.Since(at) > time.Hour {
			t.Errorf("time %q: want RFC 3339 UTC, recent (%v)", ev.Time, err)
		}
		out = append(out, ev)
	}
	return out
}

// waitMetric waits until a counter of /metrics reaches want.
func waitMetric(t *testing.T, adminURL, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := faultMetrics(t, adminURL).sum(name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
