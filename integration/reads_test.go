//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

const readsKey = "e2e-reads-signing-key"

// TestReads puts flagproxy (with a signing key) in front of the test site,
// whose /reads/ view reads flags through flagproxy_django: the names read
// and missing reach /flags.json, only the percentage flag read gets its
// dwf_ cookie, nothing of it reaches the client, a client's forged report
// changes nothing, and `flagproxy stale --json` reports the backdated flag.
func TestReads(t *testing.T) {
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		old := time.Now().Add(-60 * 24 * time.Hour).UTC()
		db.Exec(t, `INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
			VALUES ('read_pct', NULL, 50.0, ?, ?, ?, ?, '', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
			       ('unread_pct', NULL, 50.0, ?, ?, ?, ?, '', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
			       ('old_on', ?, NULL, ?, ?, ?, ?, '', ?, '', ?, ?)`,
			false, false, false, false, false,
			false, false, false, false, false,
			true, false, false, false, false, false, old, old)
		upstream := django(t, server, db.URL, `FLAGPROXY_DJANGO_SETTINGS={"FLAGPROXY_SIGNING_KEY": "`+readsKey+`"}`)
		proxyURL, adminURL := flagproxy(t, upstream, db.URL, "--signing-key", readsKey)

		// A client's forged report, in every spelling, is a request header:
		// stripped, it reaches neither Django nor the read log.
		res, body := getWith(t, proxyURL+"/reads/?flags=read_pct,ghost_flag",
			`X-Flagproxy-Reads: {"flags":["unread_pct"],"switches":[],"samples":[],"missing":{"flags":["forged"],"switches":[],"samples":[]}}`,
			`X_Flagproxy_Reads: {"flags":["unread_pct"]}`)
		var got struct {
			Flags map[string]bool   `json:"flags"`
			Meta  map[string]string `json:"meta"`
			Error *string           `json:"error"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if got.Error != nil || len(got.Flags) != 2 {
			t.Fatalf("the view: %s", body)
		}
		for k := range got.Meta {
			if strings.HasPrefix(k, "HTTP_X_FLAGPROXY_READS") {
				t.Errorf("Django saw the client's %s", k)
			}
		}
		for k := range res.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-flagproxy") {
				t.Errorf("the client got %s: %q", k, res.Header[k])
			}
		}
		if want := []string{"dwf_read_pct"}; !slices.Equal(dwfCookies(res), want) {
			t.Errorf("cookies %v, want %v", dwfCookies(res), want)
		}
		// A view without FlagproxyMiddleware reports nothing: every
		// percentage flag gets its cookie, as before.
		res, _ = getWith(t, proxyURL+"/echo/")
		if want := []string{"dwf_read_pct", "dwf_unread_pct"}; !slices.Equal(dwfCookies(res), want) {
			t.Errorf("without a report: cookies %v, want %v", dwfCookies(res), want)
		}

		st := adminFlags(t, adminURL)
		last := map[string]time.Time{}
		for _, f := range st.Flags {
			last[f.Name] = f.LastRead
		}
		if last["read_pct"].IsZero() || !last["unread_pct"].IsZero() || !last["old_on"].IsZero() {
			t.Errorf("last read: %v", last)
		}
		if !st.Stale.Reads.Reported || len(st.Stale.Missing) != 1 || st.Stale.Missing[0].Name != "ghost_flag" {
			t.Errorf("reads %+v, missing %+v", st.Stale.Reads, st.Stale.Missing)
		}

		out, code := runStale(t, "--database", db.URL, "--admin-url", adminURL, "--json", "--fail-on-stale")
		if code != 3 {
			t.Errorf("flagproxy stale --fail-on-stale: exit %d\n%s", code, out)
		}
		var rep staleJSON
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("flagproxy stale --json: %v\n%s", err, out)
		}
		var stale []string
		for _, u := range rep.Uniform {
			if u.Stale {
				stale = append(stale, u.Name)
			}
		}
		if !slices.Equal(stale, []string{"old_on"}) || rep.Stale != 1 {
			t.Errorf("stale %v (count %d), want [old_on]\n%s", stale, rep.Stale, out)
		}
		if !rep.Reads.Reported || len(rep.Missing) != 1 || len(rep.Unread) != 2 {
			t.Errorf("reads %+v, missing %+v, unread %+v", rep.Reads, rep.Missing, rep.Unread)
		}
	})
}

// getWith sends a GET with header lines written as given, and returns the
// response and its body.
func getWith(t *testing.T, target string, headerLines ...string) (*http.Response, []byte) {
	t.Helper()
	u, _ := url.Parse(target)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: close\r\n" + strings.Join(append(headerLines, ""), "\r\n")
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, res.StatusCode, body)
	}
	return res, body
}

// dwfCookies returns the sorted names of the dwf_ cookies set.
func dwfCookies(res *http.Response) []string {
	var out []string
	for _, c := range res.Cookies() {
		if strings.HasPrefix(c.Name, "dwf_") {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}

type missingJSON struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

type readsJSON struct {
	Reported bool `json:"reported"`
}

// adminStatus is the part of /flags.json these tests read.
type adminStatus struct {
	Flags []struct {
		Name     string    `json:"name"`
		LastRead time.Time `json:"last_read"`
	} `json:"flags"`
	Stale struct {
		Reads   readsJSON     `json:"reads"`
		Missing []missingJSON `json:"missing"`
	} `json:"stale"`
}

func adminFlags(t *testing.T, adminURL string) adminStatus {
	t.Helper()
	res, err := http.Get(adminURL + "/flags.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st adminStatus
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// staleJSON is the part of `flagproxy stale --json` these tests read.
type staleJSON struct {
	Reads   readsJSON `json:"reads"`
	Uniform []struct {
		Name  string `json:"name"`
		Stale bool   `json:"stale"`
	} `json:"uniform"`
	Unread  []missingJSON `json:"unread"`
	Missing []missingJSON `json:"missing"`
	Stale   int           `json:"stale"`
}

// runStale runs `flagproxy stale` and returns its output and exit status.
func runStale(t *testing.T, args ...string) ([]byte, int) {
	t.Helper()
	cmd := exec.Command(flagproxyBinary(t), append([]string{"stale"}, args...)...)
	out, err := cmd.Output()
	if exit, ok := err.(*exec.ExitError); ok {
		return out, exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out, 0
}
