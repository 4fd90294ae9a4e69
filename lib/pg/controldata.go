package pg

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Cluster states as pg_controldata prints them ("Database cluster state").
const (
	StateStartingUp         = "starting up"
	StateShutDown           = "shut down"
	StateShutDownInRecovery = "shut down in recovery"
	StateShuttingDown       = "shutting down"
	StateInCrashRecovery    = "in crash recovery"
	StateInArchiveRecovery  = "in archive recovery"
	StateInProduction       = "in production"
	StateUnrecognized       = "unrecognized status code"
)

// ControlData is what pg_controldata reports about a data directory, with
// the fields pg-ha decides on parsed and every line kept in Raw.
type ControlData struct {
	SystemIdentifier uint64 // "Database system identifier"
	// State is "Database cluster state": "shut down", "shut down in
	// recovery", "in production", "in archive recovery", "in crash
	// recovery", "shutting down" or "starting up".
	State                  string
	TimelineID             uint32 // "Latest checkpoint's TimeLineID"
	CheckpointLSN          LSN    // "Latest checkpoint location"
	RedoLSN                LSN    // "Latest checkpoint's REDO location"
	MinRecoveryEndLSN      LSN    // "Minimum recovery ending location"
	MinRecoveryEndTimeline uint32 // "Min recovery ending loc's timeline"
	DataChecksums          bool   // "Data page checksum version" != 0
	WalLogHints            bool   // "wal_log_hints setting" == "on"
	// Raw maps every "key: value" line to its trimmed value.
	Raw map[string]string
}

// Keys of pg_controldata's output that ParseControlData reads.
const (
	cdSystemID        = "Database system identifier"
	cdState           = "Database cluster state"
	cdTimeline        = "Latest checkpoint's TimeLineID"
	cdCheckpoint      = "Latest checkpoint location"
	cdRedo            = "Latest checkpoint's REDO location"
	cdMinRecovery     = "Minimum recovery ending location"
	cdMinRecoveryTLI  = "Min recovery ending loc's timeline"
	cdChecksumVersion = "Data page checksum version"
	cdWalLogHints     = "wal_log_hints setting"
)

// ParseControlData parses pg_controldata's standard output, produced with
// LC_ALL=C (untranslated keys). It does no I/O. It returns an error naming
// the key if the system identifier, cluster state, checkpoint location,
// REDO location or checkpoint timeline is missing, or if any parsed field
// has a malformed value; the other parsed fields are optional.
func ParseControlData(out []byte) (ControlData, error) {
	cd := ControlData{Raw: make(map[string]string)}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// Keys never contain ':', values may ("NextXID: 0:735").
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		cd.Raw[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return ControlData{}, fmt.Errorf("parse pg_controldata output: %w", err)
	}

	var err error
	field := func(key string, required bool, parse func(string) error) {
		if err != nil {
			return
		}
		v, ok := cd.Raw[key]
		if !ok {
			if required {
				err = fmt.Errorf("parse pg_controldata output: no %q line", key)
			}
			return
		}
		if perr := parse(v); perr != nil {
			err = fmt.Errorf("parse pg_controldata output: %q: %w", key, perr)
		}
	}
	lsn := func(dst *LSN) func(string) error {
		return func(v string) (err error) { *dst, err = ParseLSN(v); return err }
	}
	u32 := func(dst *uint32) func(string) error {
		return func(v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			*dst = uint32(n)
			return err
		}
	}
	field(cdSystemID, true, func(v string) (err error) {
		cd.SystemIdentifier, err = strconv.ParseUint(v, 10, 64)
		return err
	})
	field(cdState, true, func(v string) error {
		if v == "" {
			return fmt.Errorf("empty")
		}
		cd.State = v
		return nil
	})
	field(cdTimeline, true, u32(&cd.TimelineID))
	field(cdCheckpoint, true, lsn(&cd.CheckpointLSN))
	field(cdRedo, true, lsn(&cd.RedoLSN))
	field(cdMinRecovery, false, lsn(&cd.MinRecoveryEndLSN))
	field(cdMinRecoveryTLI, false, u32(&cd.MinRecoveryEndTimeline))
	field(cdChecksumVersion, false, func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		cd.DataChecksums = n != 0
		return err
	})
	field(cdWalLogHints, false, func(v string) error {
		switch v {
		case "on":
			cd.WalLogHints = true
		case "off":
		default:
			return fmt.Errorf("want on or off, got %q", v)
		}
		return nil
	})
	if err != nil {
		return ControlData{}, err
	}
	return cd, nil
}

// ReadControlData runs binDir/pg_controldata on dataDir as o (see Command)
// with LC_ALL=C and parses its standard output; its standard error, which
// carries warnings such as a control file CRC mismatch, is only used in
// error messages. It blocks until pg_controldata exits; cancelling ctx kills
// it. It returns an error if pg_controldata fails (no data directory, no
// permission) or its output does not parse.
func ReadControlData(ctx context.Context, o Owner, binDir, dataDir string) (ControlData, error) {
	cmd := Command(ctx, o, binDir, "pg_controldata", []string{"-D", dataDir}, "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return ControlData{}, fmt.Errorf("read control data of %s: %w",
			dataDir, runError(ctx, "pg_controldata", err, append(stdout.Bytes(), stderr.Bytes()...)))
	}
	cd, err := ParseControlData(stdout.Bytes())
	if err != nil {
		return ControlData{}, fmt.Errorf("read control data of %s: %w", dataDir, err)
	}
	return cd, nil
}

// IsPrimaryState reports whether a cluster state from pg_controldata means
// the cluster last ran as a primary: "shut down", "in production" or
// "shutting down". "in production" is also what a primary that crashed
// leaves behind. Recovery states ("shut down in recovery", "in archive
// recovery", "in crash recovery") and unknown strings return false. It does
// no I/O.
func IsPrimaryState(state string) bool {
	switch state {
	case StateShutDown, StateInProduction, StateShuttingDown:
		return true
	}
	return false
}
