package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
)

// --validate-config says "FILE: valid" on stdout for a valid file, so that
// an operator sees that something was checked, and keeps exit 2 with the
// problems on stderr for an invalid one.
func TestValidateConfigSaysValid(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("scope: demo\nname: node1\netcd3:\n  hosts: [127.0.0.1:2379]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("scope: demo\nname: node1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	validOut = &out
	t.Cleanup(func() { validOut = os.Stdout })

	c := Common{Config: good, ValidateConfig: true}
	cfg, err := c.LoadConfig(zerolog.Nop(), config.Need{Etcd: true})
	if err != nil || cfg != nil {
		t.Fatalf("valid file: cfg %v, err %v", cfg, err)
	}
	if got := out.String(); got != good+": valid\n" {
		t.Errorf("valid file printed %q, want %q", got, good+": valid\n")
	}

	out.Reset()
	c.Config = bad
	_, err = c.LoadConfig(zerolog.Nop(), config.Need{Etcd: true})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitConfig {
		t.Errorf("invalid file: err %v, want exit %d", err, ExitConfig)
	}
	if strings.Contains(out.String(), "valid") {
		t.Errorf("invalid file printed %q on stdout", out.String())
	}
}
