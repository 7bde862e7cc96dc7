//go:build integration

package integration

import (
	"os/exec"
	"testing"
)

// TestComposeFileIsValid asks Docker Compose to validate docker-compose.yml.
// It needs the docker CLI with the compose plugin (no engine); without them
// it skips, in CI too: the containers are not part of the test suite.
func TestComposeFileIsValid(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker not installed")
	}
	if err := exec.Command(docker, "compose", "version").Run(); err != nil {
		t.Skip("the docker compose plugin is not installed")
	}
	cmd := exec.Command(docker, "compose", "--file", "../docker-compose.yml", "config", "--quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}
