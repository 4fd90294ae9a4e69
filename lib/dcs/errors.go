package dcs

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

var (
	// ErrNotLeader means the leader key no longer carries the caller's fencing
	// token: it expired, was deleted, was taken by another member or was
	// handed over. The guarded operations were not applied.
	ErrNotLeader = errors.New("dcs: not the leader key holder")

	// ErrLeaderExists means another member (or this one, on another lease)
	// holds the leader key; the error message names the holder.
	ErrLeaderExists = errors.New("dcs: leader key exists")

	// ErrLeaseNotFound means etcd does not know the lease: it expired or was
	// revoked. Keys attached to it are gone.
	ErrLeaseNotFound = errors.New("dcs: lease not found")

	// ErrNoQuorum means the etcd member that served the request has no raft
	// leader (it is partitioned from its quorum, or the cluster lost quorum).
	ErrNoQuorum = errors.New("dcs: etcd member has no leader")

	// ErrConflict means a compare-and-set write found a different revision
	// than the caller expected; nothing was written.
	ErrConflict = errors.New("dcs: revision conflict")
)

// translate maps the etcd errors callers act on to this package's sentinels.
// Other errors (context errors included) are returned unchanged.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case isEtcdErr(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("%w: %v", ErrLeaseNotFound, err)
	case isEtcdErr(err, rpctypes.ErrNoLeader):
		return fmt.Errorf("%w: %v", ErrNoQuorum, err)
	}
	return err
}

func isEtcdErr(err, target error) bool {
	return errors.Is(err, target) || errors.Is(rpctypes.Error(err), target)
}
