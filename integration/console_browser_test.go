//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// newChromium starts headless Chromium (Debian's chromium) with a fresh
// profile and returns a browser context; it skips without Chromium, or
// fails under CI=true.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium not installed")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// statuses records the status of every document the browser loads.
type statuses struct {
	mu   sync.Mutex
	last map[string]int64
}

func watchStatuses(ctx context.Context) *statuses {
	s := &statuses{last: map[string]int64{}}
	chromedp.ListenTarget(ctx, func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok && r.Type == network.ResourceTypeDocument {
			s.mu.Lock()
			s.last[r.Response.URL] = r.Response.Status
			s.mu.Unlock()
		}
	})
	return s
}

func (s *statuses) of(u string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[u]
}

// TestConsoleInBrowser: in headless Chromium, a permitted user opens the
// console, turns a flag on for the session, and the next page's header has
// it on; an anonymous visitor gets 404; a POST from another site changes
// nothing. With FLAGPROXY_SCREENSHOT=docs/console.png it saves a
// screenshot of the console (the path is relative to the repository).
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	requireDjango(t)
	s := newConsoleSite(t, newSQLiteSite(t), "runserver")
	ctx := newChromium(t)
	st := watchStatuses(ctx)
	host := strings.TrimPrefix(s.proxy, "http://")
	hostOnly := host[:strings.LastIndex(host, ":")]

	// Anonymous: 404, as for a path that does not exist.
	var text string
	if err := chromedp.Run(ctx, network.Enable(), chromedp.Navigate(s.proxy+"/_flagproxy/"), chromedp.Text("body", &text)); err != nil {
		t.Fatal(err)
	}
	if code := st.of(s.proxy + "/_flagproxy/"); code != 404 || strings.TrimSpace(text) != "not found" {
		t.Errorf("anonymous console: %d %q", code, text)
	}

	// The permitted user.
	setSession := network.SetCookie("sessionid", s.sessions["flipper"]).WithDomain(hostOnly).WithPath("/").WithHTTPOnly(true)
	var notice, row string
	flipButton := `//li[.//span[@class="name" and text()="gradual-rollout"]]//button[@value="session-on"]`
	err := chromedp.Run(ctx, setSession,
		chromedp.Navigate(s.proxy+"/_flagproxy/"),
		chromedp.WaitVisible(`#list`, chromedp.ByID),
		chromedp.SendKeys(`#q`, "rollout", chromedp.ByID),
		chromedp.Click(flipButton, chromedp.BySearch),
		chromedp.WaitVisible(`.notice`, chromedp.ByQuery),
		chromedp.Text(`.notice`, &notice, chromedp.ByQuery),
		chromedp.Text(`//li[.//span[@class="name" and text()="gradual-rollout"]]`, &row, chromedp.BySearch),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notice, "gradual-rollout is on for this session") || !strings.Contains(row, "ON") || !strings.Contains(row, "session override") {
		t.Errorf("after the flip: notice %q, row %q", notice, row)
	}
	var echoJSON string
	if err := chromedp.Run(ctx, chromedp.Navigate(s.proxy+"/echo/"), chromedp.Text("body", &echoJSON)); err != nil {
		t.Fatal(err)
	}
	var e echo
	if err := json.Unmarshal([]byte(echoJSON), &e); err != nil {
		t.Fatalf("echo: %v: %s", err, echoJSON)
	}
	if f := decodeFlags(t, e); !f.Flags["gradual-rollout"] || f.Sources["gradual-rollout"] != "session" {
		t.Errorf("the next page's header: %v %v", f.Flags, f.Sources)
	}

	checkNarrow(t, ctx, s.proxy)
	checkCrossSitePost(t, ctx, s)
	if path := os.Getenv("FLAGPROXY_SCREENSHOT"); path != "" {
		saveScreenshot(t, ctx, s.proxy, path)
	}
}

// checkNarrow: at 420 px wide nothing overflows sideways.
func checkNarrow(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	var width int
	err := chromedp.Run(ctx, chromedp.EmulateViewport(420, 800), chromedp.Navigate(base+"/_flagproxy/"),
		chromedp.WaitVisible(`#list`, chromedp.ByID), chromedp.Evaluate(`document.documentElement.scrollWidth`, &width),
		chromedp.EmulateViewport(1200, 900))
	if err != nil {
		t.Fatal(err)
	}
	if width > 420 {
		t.Errorf("at 420 px the console is %d px wide", width)
	}
}

// checkCrossSitePost: a page on another site (localhost instead of
// 127.0.0.1) posts a flip to the console; nothing changes.
func checkCrossSitePost(t *testing.T, ctx context.Context, s *consoleSite) {
	t.Helper()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<form id="f" method="post" action="` + s.proxy + `/_flagproxy/">
<input name="action" value="session-on"><input name="flag" value="beta"><input name="token" value="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"></form>
<script>document.getElementById('f').submit()</script>`))
	}))
	defer evil.Close()
	other := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	var echoJSON string
	err := chromedp.Run(ctx, chromedp.Navigate(other+"/"), chromedp.Sleep(time.Second),
		chromedp.Navigate(s.proxy+"/echo/"), chromedp.Text("body", &echoJSON))
	if err != nil {
		t.Fatal(err)
	}
	var e echo
	if err := json.Unmarshal([]byte(echoJSON), &e); err != nil {
		t.Fatalf("echo: %v: %s", err, echoJSON)
	}
	if f := decodeFlags(t, e); f.Flags["beta"] {
		t.Error("a POST from another site turned beta on")
	}
}

// saveScreenshot writes a full-page screenshot of the console to path,
// relative to the repository's root.
func saveScreenshot(t *testing.T, ctx context.Context, base, path string) {
	t.Helper()
	var png []byte
	err := chromedp.Run(ctx, chromedp.EmulateViewport(1100, 800), chromedp.Navigate(base+"/_flagproxy/"),
		chromedp.WaitVisible(`#list`, chromedp.ByID), chromedp.FullScreenshot(&png, 100))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join("..", path)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot saved to %s", path)
}
