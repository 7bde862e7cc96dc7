//go:build integration

package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const ofrepTestKey = "integration-ofrep-key-0123456789"

var (
	npmOnce sync.Once
	npmErr  error
)

// ofrepNode installs integration/ofrep-node with `npm ci` (once per run)
// and returns the node binary. Without node or npm the test skips, or
// fails under CI=true.
func ofrepNode(t *testing.T) string {
	t.Helper()
	node := requireCommand(t, "node")
	npm := requireCommand(t, "npm")
	// go test caches by the files a test opens: the script and the lock.
	for _, f := range []string{"ask.js", "package.json", "package-lock.json"} {
		if _, err := os.ReadFile(filepath.Join("ofrep-node", f)); err != nil {
			t.Fatal(err)
		}
	}
	npmOnce.Do(func() {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = "ofrep-node"
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = fmt.Errorf("npm ci in integration/ofrep-node: %v\n%s", err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
	return node
}

// ofrepWorld is a random world of users, waffle flags, switches, samples,
// feature-flipper features and FeatureFlag keys, as Django creates it.
type ofrepWorld struct {
	Groups   []string         `json:"groups"`
	Users    []ofrepUser      `json:"users"`
	Flags    []ofrepFlag      `json:"flags"`
	Switches []map[string]any `json:"switches"`
	Samples  []map[string]any `json:"samples"`
	Features []map[string]any `json:"features"`
	Models   []map[string]any `json:"models"`
}

type ofrepUser struct {
	Name   string   `json:"name"`
	Staff  bool     `json:"staff"`
	Super  bool     `json:"super"`
	Groups []string `json:"groups"`
}

type ofrepFlag struct {
	Name          string   `json:"name"`
	Everyone      *bool    `json:"everyone"`
	Percent       *string  `json:"percent"`
	Testing       bool     `json:"testing"`
	Superusers    bool     `json:"superusers"`
	Staff         bool     `json:"staff"`
	Authenticated bool     `json:"authenticated"`
	Rollout       bool     `json:"rollout"`
	Languages     string   `json:"languages"`
	Users         []string `json:"users"`
	Groups        []string `json:"groups"`
}

func newOFREPWorld(rng *rand.Rand) ofrepWorld {
	w := ofrepWorld{Groups: []string{"beta", "staffers"}}
	for i := range 4 {
		u := ofrepUser{Name: fmt.Sprintf("user%d", i), Staff: rng.IntN(2) == 0, Super: i == 0}
		if rng.IntN(2) == 0 {
			u.Groups = []string{w.Groups[rng.IntN(2)]}
		}
		w.Users = append(w.Users, u)
	}
	for i := range 6 + rng.IntN(8) {
		prefix := "f"
		if i%4 == 3 {
			prefix = "g" // not served to the browser
		}
		f := ofrepFlag{Name: fmt.Sprintf("%s%d", prefix, i), Testing: rng.IntN(3) == 0, Superusers: rng.IntN(3) == 0,
			Staff: rng.IntN(3) == 0, Authenticated: rng.IntN(5) == 0, Rollout: rng.IntN(3) == 0}
		if rng.IntN(4) == 0 {
			b := rng.IntN(2) == 0
			f.Everyone = &b
		}
		if rng.IntN(3) != 0 {
			p := fmt.Sprintf("%d.%d", rng.IntN(100), rng.IntN(10)) // numeric(3,1): at most 99.9
			f.Percent = &p
		}
		if rng.IntN(3) == 0 {
			f.Languages = []string{"fr", "de", "fr,de"}[rng.IntN(3)]
		}
		if rng.IntN(3) == 0 {
			f.Users = []string{w.Users[rng.IntN(len(w.Users))].Name}
		}
		if rng.IntN(3) == 0 {
			f.Groups = []string{w.Groups[rng.IntN(2)]}
		}
		w.Flags = append(w.Flags, f)
	}
	for i := range 1 + rng.IntN(3) {
		w.Switches = append(w.Switches, map[string]any{"name": fmt.Sprintf("sw%d", i), "active": rng.IntN(2) == 0})
	}
	w.Samples = []map[string]any{{"name": "never", "percent": "0.0"}, {"name": "always", "percent": "100.0"}, {"name": "half", "percent": "50.0"}}
	for i := range rng.IntN(3) {
		w.Features = append(w.Features, map[string]any{"name": fmt.Sprintf("feature%d", i), "enabled": rng.IntN(2) == 0})
	}
	for i := range 1 + rng.IntN(2) {
		w.Models = append(w.Models, map[string]any{"key": fmt.Sprintf("model-%d", i), "enabled": rng.IntN(4) != 0,
			"rollout": rng.IntN(101), "allowed": []string{w.Users[rng.IntN(len(w.Users))].Name}})
	}
	return w
}

// seedOFREPWorld creates the world through Django's models; it returns the
// primary key of each user.
const seedOFREPWorldPy = `
import json, os
from decimal import Decimal
from django.contrib.auth.models import Group, User
from waffle.models import Flag, Sample, Switch
from featureflipper.models import Feature
from flags.models import FeatureFlag
W = json.loads(os.environ["OFREP_WORLD"])
groups = {g: Group.objects.create(name=g) for g in W["groups"]}
users = {}
for u in W["users"]:
    users[u["name"]] = User.objects.create_user(u["name"], password="pw", is_staff=u["staff"], is_superuser=u["super"])
    for g in u["groups"] or []:
        users[u["name"]].groups.add(groups[g])
for f in W["flags"]:
    fl = Flag.objects.create(name=f["name"], everyone=f["everyone"], percent=None if f["percent"] is None else Decimal(f["percent"]),
        testing=f["testing"], superusers=f["superusers"], staff=f["staff"], authenticated=f["authenticated"],
        rollout=f["rollout"], languages=f["languages"])
    for u in f["users"] or []:
        fl.users.add(users[u])
    for g in f["groups"] or []:
        fl.groups.add(groups[g])
for s in W["switches"]:
    Switch.objects.create(name=s["name"], active=s["active"])
for s in W["samples"]:
    Sample.objects.create(name=s["name"], percent=Decimal(s["percent"]))
for f in W["features"] or []:
    Feature.objects.create(name=f["name"], enabled=f["enabled"])
for m in W["models"]:
    ff = FeatureFlag.objects.create(key=m["key"], enabled=m["enabled"], rollout_percent=m["rollout"])
    for u in m["allowed"]:
        ff.allowed_users.add(users[u])
print(json.dumps({u.username: str(u.pk) for u in User.objects.all()}))
`

// ofrepVisit is one web request through flagproxy and what it got.
type ofrepVisit struct {
	user     string // username; "" anonymous
	query    string
	language string
	cookies  map[string]string // without the session cookie
	header   flags
	next     map[string]string // cookies plus the dwf_ cookies the response set
}

// visit sends a web request for /echo/ through flagproxy.
func visit(t *testing.T, proxyURL, session string, v *ofrepVisit) {
	t.Helper()
	target := proxyURL + "/echo/"
	if v.query != "" {
		target += "?" + v.query
	}
	req, _ := http.NewRequest("GET", target, nil)
	var lines []string
	for k, val := range v.cookies {
		lines = append(lines, k+"="+val)
	}
	if session != "" {
		lines = append(lines, "sessionid="+session)
	}
	if len(lines) > 0 {
		req.Header.Set("Cookie", strings.Join(lines, "; "))
	}
	if v.language != "" {
		req.Header.Set("Accept-Language", v.language)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", target, res.StatusCode, body)
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("echo %q: %v", body, err)
	}
	v.header = decodeFlags(t, e)
	v.next = map[string]string{}
	for k, val := range v.cookies {
		v.next[k] = val
	}
	for _, line := range res.Header.Values("Set-Cookie") {
		nv, _, _ := strings.Cut(line, ";")
		if k, val, ok := strings.Cut(nv, "="); ok && strings.HasPrefix(k, "dwf_") {
			v.next[k] = val
		}
	}
}

// nodeAnswer is what the OpenFeature SDK resolved for one key.
type nodeAnswer struct {
	Value     bool           `json:"value"`
	Reason    string         `json:"reason"`
	Variant   string         `json:"variant"`
	ErrorCode string         `json:"errorCode"`
	Metadata  map[string]any `json:"metadata"`
}

// askNode runs ask.js: the official OpenFeature server SDK with its OFREP
// provider, against flagproxy's admin listener.
func askNode(t *testing.T, node, adminURL string, queries []map[string]any) []map[string]nodeAnswer {
	t.Helper()
	in, _ := json.Marshal(queries)
	cmd := exec.Command(node, "ask.js", adminURL, ofrepTestKey)
	cmd.Dir = "ofrep-node"
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node ask.js: %v\n%s", err, stderr.String())
	}
	var answers []map[string]nodeAnswer
	if err := json.Unmarshal(out, &answers); err != nil {
		t.Fatalf("node ask.js printed %q: %v", out, err)
	}
	return answers
}

// splitOn is the README's deterministic split: on when draw*100 <= percent.
func splitOn(kind, name, user string, percent float64) bool {
	sum := sha256.Sum256([]byte("flagproxy-split\x00" + kind + "\x00" + name + "\x00" + user))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11)/(1<<53)*100 <= percent
}

// TestOFREPAndBrowserThroughFlagproxy puts flagproxy in front of the test
// site on a random world and checks, on SQLite and PostgreSQL:
//   - the official OpenFeature Node SDK with its OFREP provider, asking
//     with a user's primary key and the same path, query, language and
//     cookies (plus the dwf_ cookies the response set), gets for every
//     flag, switch and sample the value the header of that user's web
//     request carried (samples at 0 and 100 %; at 50 % the documented
//     split), and the documented split for a flag rolled without its
//     cookie; an unknown key is FLAG_NOT_FOUND;
//   - flagproxy_django.ofrep (the Python client) agrees;
//   - without the key, 401; the bulk ETag answers 304 until a flag changes;
//   - /_flagproxy/flags.json and waffle.js serve the configured names only,
//     with this visitor's values.
func TestOFREPAndBrowserThroughFlagproxy(t *testing.T) {
	t.Parallel()
	node := ofrepNode(t)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("FLAGPROXY_OFREP_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("FLAGPROXY_OFREP_SEED=%d", seed)
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		rng := rand.New(rand.NewPCG(seed, uint64(len(server))))
		world := newOFREPWorld(rng)
		worldJSON, _ := json.Marshal(world)
		pks := map[string]string{}
		out := manageEnv(t, db.URL, []string{"OFREP_WORLD=" + string(worldJSON)}, "shell", "-c", seedOFREPWorldPy)
		if err := json.Unmarshal([]byte(lastLine(out)), &pks); err != nil {
			t.Fatalf("seed output %q: %v", out, err)
		}
		upstream := django(t, server, db.URL)
		settings := settingsFile(t, `, "MIDDLEWARE": ["django.middleware.locale.LocaleMiddleware"], "USE_I18N": true, "LANGUAGE_CODE": "en",
			"LANGUAGES": [["en", "English"], ["fr", "French"], ["de", "German"]]`)
		proxyURL, adminURL := flagproxy(t, upstream, db.URL, "--django-settings", settings, "--ofrep-keys", ofrepTestKey,
			"--browser-flags", "f*,switch:*,model-*")

		var names []string
		for _, f := range world.Flags {
			names = append(names, f.Name)
		}
		var keys []string
		keys = append(keys, names...)
		for _, f := range world.Features {
			keys = append(keys, f["name"].(string))
		}
		for _, m := range world.Models {
			keys = append(keys, m["key"].(string))
		}
		for _, s := range world.Switches {
			keys = append(keys, "switch:"+s["name"].(string))
		}
		for _, s := range world.Samples {
			keys = append(keys, "sample:"+s["name"].(string))
		}

		// Web requests: every user and an anonymous visitor, each twice.
		sessions := map[string]string{"": ""}
		for _, u := range world.Users {
			sessions[u.Name] = loginThrough(t, proxyURL, u.Name)
		}
		var visits []*ofrepVisit
		for _, user := range append([]string{""}, slices.Sorted(maps.Keys(pks))...) {
			for i := range 2 {
				v := &ofrepVisit{user: user, cookies: map[string]string{}}
				if i == 1 {
					var params []string
					for range rng.IntN(3) {
						n := names[rng.IntN(len(names))]
						params = append(params, []string{"dwft_" + n + "=1", "dwft_" + n + "=0", "enable_" + n}[rng.IntN(3)])
					}
					v.query = strings.Join(params, "&")
					v.language = []string{"", "fr", "de-CH, de;q=0.8", "en"}[rng.IntN(4)]
					for _, n := range names {
						if rng.IntN(4) == 0 {
							v.cookies["dwf_"+n] = []string{"True", "False"}[rng.IntN(2)]
						}
					}
					if rng.IntN(3) == 0 {
						v.cookies["django_language"] = []string{"fr", "de"}[rng.IntN(2)]
					}
				}
				visit(t, proxyURL, sessions[user], v)
				visits = append(visits, v)
			}
		}

		// The same questions through the OpenFeature SDK; and once more
		// without any cookie, for the deterministic split.
		var queries []map[string]any
		for _, v := range visits {
			ctx := map[string]any{"path": "/echo/", "query": v.query, "language": v.language, "cookies": v.next}
			if v.user != "" {
				ctx["targetingKey"] = pks[v.user]
			}
			queries = append(queries, map[string]any{"context": ctx, "keys": append(slices.Clone(keys), "no-such-flag")})
		}
		for _, user := range slices.Sorted(maps.Keys(pks)) {
			queries = append(queries, map[string]any{"context": map[string]any{"targetingKey": pks[user], "path": "/echo/"}, "keys": keys})
		}
		answers := askNode(t, node, adminURL, queries)
		for i, v := range visits {
			a := answers[i]
			who := orAnon(v.user)
			for _, k := range keys {
				kind, name, _ := strings.Cut(k, ":")
				var want bool
				switch {
				case name == "":
					name, want = kind, v.header.Flags[kind]
				case kind == "switch":
					want = v.header.Switches[name]
				default:
					want = v.header.Samples[name]
					if name == "half" {
						want = splitOn("sample", "half", pks[v.user], 50) // the web draws at random
					}
				}
				if got := a[k]; got.ErrorCode != "" || got.Value != want {
					t.Errorf("%s, query %q, language %q, cookies %v: %s = %+v through OFREP, header %v", who, v.query, v.language, v.cookies, k, got, want)
				}
			}
			if got := a["no-such-flag"]; got.ErrorCode != "FLAG_NOT_FOUND" {
				t.Errorf("an unknown key: %+v, want FLAG_NOT_FOUND", got)
			}
			if id := a[keys[0]].Metadata["identity"]; v.user != "" && id != "user" || v.user == "" && id != "anonymous" {
				t.Errorf("%s: metadata identity %v", who, id)
			}
		}
		for i, user := range slices.Sorted(maps.Keys(pks)) {
			for _, f := range world.Flags {
				got := answers[len(visits)+i][f.Name]
				if got.Metadata["flagproxyReason"] != "percent-roll" {
					continue
				}
				p, _ := strconv.ParseFloat(*f.Percent, 64)
				if want := splitOn("flag", f.Name, pks[user], p); got.Value != want || got.Reason != "SPLIT" {
					t.Errorf("%s, %s without its cookie: %+v, want the split %v", user, f.Name, got, want)
				}
			}
		}

		// The Python client, in the site's own process.
		first := visits[2] // the first user's plain visit
		env := []string{`FLAGPROXY_DJANGO_SETTINGS={"FLAGPROXY_OFREP_URL": "` + adminURL + `", "FLAGPROXY_OFREP_KEY": "` + ofrepTestKey + `"}`}
		py := fmt.Sprintf(`import json
from django.contrib.auth.models import User
from flagproxy_django.ofrep import flag_is_active
u = User.objects.get(username=%q)
print(json.dumps({n: flag_is_active(n, user=u, path="/echo/", cookies=json.loads(%q)) for n in json.loads(%q)}))`,
			first.user, mustJSON(first.next), mustJSON(names))
		var fromPython map[string]bool
		if err := json.Unmarshal([]byte(lastLine(manageEnv(t, db.URL, env, "shell", "-c", py))), &fromPython); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if fromPython[n] != first.header.Flags[n] {
				t.Errorf("flagproxy_django.ofrep: %s = %v, header %v", n, fromPython[n], first.header.Flags[n])
			}
		}

		// Keys, bulk, ETag.
		post := func(path, body string, header ...string) *http.Response {
			req, _ := http.NewRequest("POST", adminURL+path, strings.NewReader(body))
			for _, h := range header {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res
		}
		if res := post("/ofrep/v1/evaluate/flags", `{}`); res.StatusCode != 401 {
			t.Errorf("bulk without a key: %d, want 401", res.StatusCode)
		}
		if res := post("/ofrep/v1/evaluate/flags/"+names[0], `{}`, "X-API-Key: wrong-key-0123456789"); res.StatusCode != 401 {
			t.Errorf("single with a wrong key: %d, want 401", res.StatusCode)
		}
		bulkBody := `{"context":{"targetingKey":"` + pks[first.user] + `"}}`
		auth := "Authorization: Bearer " + ofrepTestKey
		res := post("/ofrep/v1/evaluate/flags", bulkBody, auth)
		etag := res.Header.Get("ETag")
		if res.StatusCode != 200 || etag == "" {
			t.Fatalf("bulk: %d, ETag %q", res.StatusCode, etag)
		}
		if res := post("/ofrep/v1/evaluate/flags", bulkBody, auth, "If-None-Match: "+etag); res.StatusCode != 304 {
			t.Errorf("bulk with its ETag: %d, want 304", res.StatusCode)
		}
		db.Exec(t, `UPDATE waffle_switch SET active = NOT active WHERE name = ?`, "sw0")
		deadline := time.Now().Add(10 * time.Second)
		for post("/ofrep/v1/evaluate/flags", bulkBody, auth, "If-None-Match: "+etag).StatusCode != 200 {
			if time.Now().After(deadline) {
				t.Fatal("the bulk ETag did not change within 10 s of a switch change")
			}
			time.Sleep(100 * time.Millisecond)
		}

		// The browser endpoint: this visitor's values of the configured
		// names, never forwarded to Django.
		for _, v := range visits {
			if v.query != "" || v.language != "" {
				continue // flags.json decides for its own URL
			}
			req, _ := http.NewRequest("GET", proxyURL+"/_flagproxy/flags.json", nil)
			var lines []string
			for k, val := range v.next {
				lines = append(lines, k+"="+val)
			}
			if s := sessions[v.user]; s != "" {
				lines = append(lines, "sessionid="+s)
			}
			req.Header.Set("Cookie", strings.Join(lines, "; "))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var status map[string]map[string]struct {
				IsActive bool `json:"is_active"`
			}
			err = json.NewDecoder(res.Body).Decode(&status)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || res.Header.Get("Cache-Control") != "private, no-store" || res.Header.Get("ETag") == "" {
				t.Fatalf("flags.json: %d %v %v", res.StatusCode, res.Header, err)
			}
			for _, n := range names {
				got, served := status["flags"][n]
				if strings.HasPrefix(n, "g") {
					if served {
						t.Errorf("flags.json serves %s, which --browser-flags does not name", n)
					}
					continue
				}
				if !served || got.IsActive != v.header.Flags[n] {
					t.Errorf("%s: flags.json %s = %+v (served %v), header %v", orAnon(v.user), n, got, served, v.header.Flags[n])
				}
			}
			if len(status["samples"]) != 0 || len(status["switches"]) != len(world.Switches) {
				t.Errorf("flags.json serves samples %v and switches %v", status["samples"], status["switches"])
			}
		}
		res, err := http.Get(proxyURL + "/_flagproxy/waffle.js")
		if err != nil {
			t.Fatal(err)
		}
		js, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Contains(js, []byte("window.waffle = {")) || bytes.Contains(js, []byte(`"g3"`)) {
			t.Errorf("waffle.js: %d %s", res.StatusCode, js)
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestOFREPListeners: --ofrep-listen serves OFREP apart from the admin
// listener; without --ofrep-keys OFREP is served only on a loopback
// listener, and the log says which.
func TestOFREPListeners(t *testing.T) {
	t.Parallel()
	requireDjango(t)
	db := newSQLiteSite(t)
	ask := func(base string) int {
		res, err := http.Post(base+"/ofrep/v1/evaluate/flags", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	run := func(args ...string) (*process, string) {
		admin := freeAddr(t)
		args = append([]string{"serve", "--listen", freeAddr(t), "--admin-listen", admin, "--upstream", "http://127.0.0.1:9", "--database", db.URL}, args...)
		for i, a := range args {
			if a == "--admin-listen" && i+1 < len(args) && strings.HasPrefix(args[i+1], "0.0.0.0:") {
				admin = "127.0.0.1:" + strings.TrimPrefix(args[i+1], "0.0.0.0:")
			}
		}
		p := start(t, "flagproxy", ".", nil, flagproxyBinary(t), args...)
		waitHTTP(t, "http://"+admin+"/readyz", 200, 15*time.Second)
		return p, "http://" + admin
	}

	apart := freeAddr(t)
	p, admin := run("--ofrep-listen", apart)
	if got := ask("http://" + apart); got != 200 {
		t.Errorf("--ofrep-listen without keys, on loopback: %d, want 200", got)
	}
	if got := ask(admin); got != 405 { // the admin listener's answer to a POST it does not serve
		t.Errorf("the admin listener with --ofrep-listen set: %d, want 405", got)
	}
	if !strings.Contains(p.out.String(), "loopback callers only") {
		t.Errorf("the log does not say OFREP is open to loopback callers:\n%s", p.out.String())
	}

	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	p, admin = run("--admin-listen", "0.0.0.0:"+port)
	if got := ask(admin); got != 405 {
		t.Errorf("no keys, admin on 0.0.0.0: %d, want 405 (OFREP off)", got)
	}
	if !strings.Contains(p.out.String(), "OFREP is off") {
		t.Errorf("the log does not say OFREP is off:\n%s", p.out.String())
	}

	p, admin = run("--admin-listen", "0.0.0.0:"+strings.TrimPrefix(freeAddr(t), "127.0.0.1:"), "--ofrep-keys", ofrepTestKey)
	if got := ask(admin); got != 401 {
		t.Errorf("with keys, no key sent: %d, want 401", got)
	}
	if !strings.Contains(p.out.String(), "OFREP served with API keys") {
		t.Errorf("the log does not say OFREP is served with keys:\n%s", p.out.String())
	}
}
