package pg

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RemoveSegment removes the System V shared memory segment that the server
// of dataDir recorded in postmaster.pid, if no process is attached to it
// any more. PostgreSQL removes that segment itself at a clean shutdown and
// when it next starts in the same data directory; a server that was killed
// leaves it behind, and when its data directory is then moved aside or
// deleted (a re-clone) nothing ever removes it: enough of them exhaust the
// kernel's segment limit (SHMMNI) and every later server start fails. A
// segment still attached, one whose key no longer matches the file, and a
// data directory without postmaster.pid are left alone. It reports whether
// it removed a segment.
func RemoveSegment(dataDir string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	key, id, ok := segmentOf(string(data))
	if !ok {
		return false, nil
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		if err == unix.EINVAL || err == unix.EIDRM {
			return false, nil // already gone
		}
		return false, err
	}
	if uint64(uint32(desc.Perm.Key)) != key || desc.Nattch != 0 {
		return false, nil
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		if err == unix.EINVAL || err == unix.EIDRM {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// segmentOf returns the key and id of the shared memory segment on the
// seventh line of a postmaster.pid file ("%9lu %9lu").
func segmentOf(pidFile string) (key uint64, id int, ok bool) {
	lines := strings.Split(pidFile, "\n")
	if len(lines) < 7 {
		return 0, 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return 0, 0, false
	}
	key, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	id, err = strconv.Atoi(f[1])
	if err != nil || id < 0 {
		return 0, 0, false
	}
	return key, id, true
}
