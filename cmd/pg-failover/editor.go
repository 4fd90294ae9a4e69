package main

import (
	"fmt"
	"os"
	"os/exec"
)

// editInEditor writes text to a temporary .yaml file, runs $VISUAL or
// $EDITOR on it (vi if neither is set) through /bin/sh, so an editor with
// arguments works, as patronictl edit-config does, and returns the file's
// content once the editor exits 0. It blocks until then.
func editInEditor(text string) ([]byte, error) {
	f, err := os.CreateTemp("", "pg-failover-config-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("edit-config: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return nil, fmt.Errorf("edit-config: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("edit-config: %w", err)
	}
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	cmd := exec.Command("/bin/sh", "-c", editor+` "$1"`, "sh", f.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("edit-config: the editor %q failed (%w); nothing was changed", editor, err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, fmt.Errorf("edit-config: %w", err)
	}
	return b, nil
}
