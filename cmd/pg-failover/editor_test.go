package main

import (
	"strings"
	"testing"
)

// The editor gets the file's name as one argument, even when $EDITOR has
// arguments of its own, and what it saved comes back; a failing editor
// changes nothing.
func TestEditInEditor(t *testing.T) {
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", `sed -i -e "s/ttl: 30/ttl: 20/"`)
	got, err := editInEditor("loop_wait: 10\nttl: 30\n")
	if err != nil || string(got) != "loop_wait: 10\nttl: 20\n" {
		t.Fatalf("editInEditor = %q, %v", got, err)
	}
	t.Setenv("VISUAL", "false")
	if _, err := editInEditor("ttl: 30\n"); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("failing editor: %v", err)
	}
}
