package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// walFS is the directory of node n where its own small filesystem for
// pg_wal is mounted when Options.WALFilesystem is set.
func (n *Node) walFS() string { return filepath.Join(n.Dir, "walfs") }

// WALDir is where pg_wal lives when the node initialized the cluster with
// Options.WALFilesystem: on a filesystem of its own, the target of the data
// directory's pg_wal symlink.
func (n *Node) WALDir() string { return filepath.Join(n.walFS(), "pg_wal") }

// mountWAL mounts a tmpfs of Options.WALFilesystem bytes, owned by the
// postgres user, at the node's walFS directory.
func (n *Node) mountWAL() error {
	size := n.c.Options.WALFilesystem
	if size <= 0 {
		return nil
	}
	id, err := postgresUser()
	if err != nil {
		return err
	}
	if err := ensureOwned(n.walFS()); err != nil {
		return err
	}
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%d,gid=%d", size, id.uid, id.gid)
	if err := syscall.Mount("tmpfs", n.walFS(), "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("mount a tmpfs (%s) at %s for pg_wal: %w", opts, n.walFS(), err)
	}
	n.walMounted = true
	return nil
}

// unmountWAL unmounts what mountWAL mounted; every process of the node must
// be gone.
func (n *Node) unmountWAL() {
	if !n.walMounted {
		return
	}
	if err := syscall.Unmount(n.walFS(), syscall.MNT_DETACH); err != nil {
		n.c.t.Logf("unmount %s: %v", n.walFS(), err)
		return
	}
	n.walMounted = false
}

// initdbWALDir is the initdb waldir option for node n's YAML when
// o.WALFilesystem is set.
func initdbWALDir(o Options, n *Node) []any {
	if o.WALFilesystem <= 0 {
		return nil
	}
	return []any{map[string]any{"waldir": n.WALDir()}}
}

// FillFS writes a file of zeroes at path until its filesystem has at most
// leave bytes free, and returns the bytes left free.
func FillFS(path string, leave int64) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", filepath.Dir(path), err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= leave {
		return free, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(buf)) {
		if n < int64(len(buf)) {
			buf = buf[:n]
		}
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("fill %s: %w", path, err)
		}
	}
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
