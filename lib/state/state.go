// Package state holds the small JSON files the daemons of one node publish
// in the runtime directory: pg-supervise's state (supervise.json) and
// pg-lockd's heartbeat (lockd.json), and pg-bootstrap's state
// (bootstrap.json) while it runs. Files are replaced atomically (write to
// a temporary file, fsync, rename), so a reader sees either the old or the
// new content, never a mix.
//
// Times that must be compared across processes are CLOCK_BOOTTIME readings
// (lib/clock); wall-clock times are for humans only.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// File names inside the runtime directory.
const (
	SuperviseFile = "supervise.json"
	LockdFile     = "lockd.json"
)

// The states pg-supervise publishes.
const (
	Starting  = "starting"
	Running   = "running"
	Stopped   = "stopped"
	Crashed   = "crashed"
	Promoting = "promoting"
	Demoting  = "demoting"
	Fenced    = "fenced"
	Rewinding = "rewinding"
	Cloning   = "cloning"
	Stopping  = "stopping"
	// RewindFailed: pg_rewind failed against a healthy leader and
	// remove_data_directory_on_rewind_failure is off; Diverged: the data
	// diverged, use_pg_rewind is off and
	// remove_data_directory_on_diverged_timelines is off. In both
	// PostgreSQL stays down until the replica is rebuilt.
	RewindFailed = "rewind failed"
	Diverged     = "diverged"
)

// Supervise is pg-supervise's published state.
type Supervise struct {
	State string `json:"state"`
	// Role is what PostgreSQL runs as: "primary", "replica" or "" when down.
	Role string `json:"role,omitempty"`
	// PID of the postmaster, 0 when none runs.
	PID int `json:"pid,omitempty"`
	// Desired is the verb of the role line in force.
	Desired string `json:"desired,omitempty"`
	// Leader is the member followed, for a replica.
	Leader string `json:"leader,omitempty"`
	// Deadline is the fence deadline in force (CLOCK_BOOTTIME ns), 0 if none.
	Deadline clock.Time `json:"deadline,omitempty"`
	// Token is the leader key revision PostgreSQL was last primary under.
	Token int64 `json:"token,omitempty"`
	// StopLSN is the checkpoint location after the last clean stop.
	StopLSN string `json:"stop_lsn,omitempty"`
	// Paused is the maintenance mode in force.
	Paused bool `json:"paused,omitempty"`
	// PrePromoteRefused is the leader token under which the pre_promote
	// script refused this node's promotion (0: none): pg-supervise never
	// promotes under it, and pg-lockd gives the leader key up.
	PrePromoteRefused int64 `json:"pre_promote_refused,omitempty"`
	// Message says what went wrong last, for operators.
	Message string `json:"message,omitempty"`
	// Progress is the clone's while State is Cloning, nil before its first
	// report and in every other state.
	Progress *Progress `json:"progress,omitempty"`
	// Accepts are the role line keys this pg-supervise takes that an older
	// one would refuse (rolepipe.NewerKeys): pg-lockd sends such a key only
	// to a reader that lists it, so that during an upgrade a line is never
	// refused, which would cost the primary its validity.
	Accepts []string `json:"accepts,omitempty"`
	// Updated is when this was written (CLOCK_BOOTTIME ns).
	Updated clock.Time `json:"updated"`
	// Since is when State was entered (wall clock).
	Since time.Time `json:"since"`
}

// Lockd is pg-lockd's heartbeat.
type Lockd struct {
	// Role is "leader", "replica", "candidate" or "stopping".
	Role string `json:"role"`
	// Leader is the current leader's name, "" if none.
	Leader string `json:"leader,omitempty"`
	// LeaseID is this node's etcd lease, so that a restarted pg-lockd can
	// keep it (and the leader key) instead of causing a failover.
	LeaseID int64 `json:"lease_id,omitempty"`
	// TTL of the lease.
	TTL time.Duration `json:"ttl,omitempty"`
	// ValidUntil is the end of the lease validity (CLOCK_BOOTTIME ns).
	ValidUntil clock.Time `json:"valid_until,omitempty"`
	// Token is the leader key's create revision while leader.
	Token int64 `json:"token,omitempty"`
	// FailsafeMode says this leader runs failsafe rounds when etcd becomes
	// unreachable (failsafe_mode on and a failsafe key seen): its lease
	// validity, then FailsafeUntil, stand for the leader key while etcd
	// cannot confirm it.
	FailsafeMode bool `json:"failsafe_mode,omitempty"`
	// FailsafeUntil, while not 0, is the lead deadline failsafe_mode's
	// rounds won past the lease's (CLOCK_BOOTTIME ns): etcd is unreachable
	// and every member promised over POST /failsafe not to take the leader
	// key, so this leader keeps its primary until then without a lease.
	FailsafeUntil clock.Time `json:"failsafe_until,omitempty"`
	// Line is the last role line sent.
	Line string `json:"line,omitempty"`
	// Paused is the cluster's maintenance mode.
	Paused bool `json:"paused,omitempty"`
	// EtcdOK says whether the last etcd request succeeded.
	EtcdOK bool `json:"etcd_ok"`
	// Updated is when this was written (CLOCK_BOOTTIME ns).
	Updated clock.Time `json:"updated"`
}

// ErrNotExist is returned when the file is absent.
var ErrNotExist = errors.New("state file does not exist")

// Write replaces dir/name with v, atomically. It blocks on the disk.
func Write(dir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Read decodes dir/name into v. It returns ErrNotExist (wrapped) if absent.
func Read(dir, name string, v any) error {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", name, ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// ReadSupervise reads pg-supervise's state from dir.
func ReadSupervise(dir string) (Supervise, error) {
	var s Supervise
	err := Read(dir, SuperviseFile, &s)
	return s, err
}

// ReadLockd reads pg-lockd's heartbeat from dir.
func ReadLockd(dir string) (Lockd, error) {
	var s Lockd
	err := Read(dir, LockdFile, &s)
	return s, err
}

// Fresh reports whether a file updated at updated is younger than maxAge at now.
func Fresh(updated, now clock.Time, maxAge time.Duration) bool {
	return updated != 0 && now.Sub(updated) <= maxAge && now.Sub(updated) >= -time.Second
}
