package pg

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// Owner is the OS account PostgreSQL runs as: the owner of the data
// directory. PostgreSQL refuses to start as root, so every PostgreSQL binary
// started by a root process must switch to this account.
type Owner struct {
	UID, GID uint32
	// Name is the account's login name; empty if the UID has no entry in
	// the user database.
	Name string
	// Home is the account's home directory; empty if unknown.
	Home string
}

// LookupOwner resolves a user name (such as "postgres") through the system
// user database. It blocks on reading that database (files or NSS) and
// cannot be cancelled. It returns an error if the user does not exist or
// its ids are not numeric.
func LookupOwner(name string) (Owner, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Owner{}, fmt.Errorf("look up user %q: %w", name, err)
	}
	o, err := ownerFromUser(u)
	if err != nil {
		return Owner{}, fmt.Errorf("look up user %q: %w", name, err)
	}
	return o, nil
}

func ownerFromUser(u *user.User) (Owner, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Owner{}, fmt.Errorf("uid %q is not numeric", u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return Owner{}, fmt.Errorf("gid %q is not numeric", u.Gid)
	}
	return Owner{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}, nil
}

// DataDirOwner returns the owner of an existing directory (normally a data
// directory), from stat(2). If the owning UID has an entry in the user
// database, Name, Home and the primary GID come from it (as `runuser` or
// systemd's User= would use them); otherwise Name and Home are empty and GID
// is the directory's group. It blocks on the stat and the user database and
// cannot be cancelled. It returns an error if the path cannot be stat'ed or
// is not a directory; an unresolvable UID is not an error.
func DataDirOwner(dataDir string) (Owner, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return Owner{}, fmt.Errorf("data directory owner: %w", err)
	}
	if !fi.IsDir() {
		return Owner{}, fmt.Errorf("data directory owner: %s is not a directory", dataDir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, fmt.Errorf("data directory owner: no ownership information for %s", dataDir)
	}
	o := Owner{UID: st.Uid, GID: st.Gid}
	if u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10)); err == nil {
		if resolved, err := ownerFromUser(u); err == nil && resolved.UID == o.UID {
			o = resolved
		}
	}
	return o, nil
}

// NeedCredential reports whether a child started by the current process
// must switch to o's credentials: the current process runs as root (whom
// PostgreSQL refuses), or its effective UID differs from o.UID. A non-root
// process for which this is true cannot start o's processes at all; the
// start then fails with EPERM. It does no I/O.
func (o Owner) NeedCredential() bool {
	euid := os.Geteuid()
	return euid == 0 || uint32(euid) != o.UID
}

// SysProcAttr returns process attributes that run a child as o: its own
// process group (Setpgid, so the group can be signalled as a whole and a
// terminal's signals do not reach it), and, when NeedCredential says so,
// o's UID, GID and supplementary groups (looked up by o.Name in the group
// database; none if that fails or Name is empty).
//
// With pdeathsig != 0 the child receives that signal when its parent dies.
// Linux ties this to the OS thread that started the child, not the process:
// in Go that only differs when the starting goroutine called
// runtime.LockOSThread and then exits without unlocking, so start
// long-lived children from an unlocked goroutine.
//
// It blocks only on the group database lookup and cannot fail.
func (o Owner) SysProcAttr(pdeathsig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: pdeathsig}
	if o.NeedCredential() {
		attr.Credential = &syscall.Credential{Uid: o.UID, Gid: o.GID, Groups: o.groups()}
	}
	return attr
}

// groups returns o's supplementary group ids, or nil if unknown.
func (o Owner) groups() []uint32 {
	if o.Name == "" {
		return nil
	}
	u, err := user.Lookup(o.Name)
	if err != nil || u.Uid != strconv.FormatUint(uint64(o.UID), 10) {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var gids []uint32
	for _, id := range ids {
		g, err := strconv.ParseUint(id, 10, 32)
		if err == nil {
			gids = append(gids, uint32(g))
		}
	}
	return gids
}
