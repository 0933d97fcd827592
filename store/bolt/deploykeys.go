package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// Deployment keys belong to no tenant: one bucket, keyed by name, each
// value the newest (today the only) version of that key. Nothing here
// changes or deletes a stored key.

type deploymentKeyRecord struct {
	Version   uint32    `json:"version"`
	Wrapped   []byte    `json:"wrapped"`
	CreatedAt time.Time `json:"created_at"`
}

// DeploymentKey returns the named key. Errors: ENOTFOUND; EINVALID for an
// empty name.
func (db *DB) DeploymentKey(ctx context.Context, name string) (eventvault.DeploymentKey, error) {
	const op = "bolt.DeploymentKey"
	if name == "" {
		return eventvault.DeploymentKey{}, &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a deployment key needs a name"}
	}
	var k eventvault.DeploymentKey
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDeploymentKeys).Get([]byte(name))
		if v == nil {
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("no deployment key %s", name)}
		}
		var err error
		k, err = decodeDeploymentKey(name, v)
		return err
	})
	return k, err
}

// CreateDeploymentKey stores k unless a key of its name exists, and returns
// the stored one. Errors: EINVALID for an empty name, a zero version or no
// wrapped key.
func (db *DB) CreateDeploymentKey(ctx context.Context, k eventvault.DeploymentKey) (eventvault.DeploymentKey, error) {
	const op = "bolt.CreateDeploymentKey"
	if k.Name == "" || k.Version == 0 || len(k.Wrapped) == 0 {
		return eventvault.DeploymentKey{}, &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a deployment key needs a name, a version and a wrapped key"}
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	k.CreatedAt = k.CreatedAt.UTC()
	var got eventvault.DeploymentKey
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeploymentKeys)
		if v := b.Get([]byte(k.Name)); v != nil {
			var err error
			got, err = decodeDeploymentKey(k.Name, v)
			return err
		}
		v, err := json.Marshal(deploymentKeyRecord{Version: k.Version, Wrapped: k.Wrapped, CreatedAt: k.CreatedAt})
		if err != nil {
			return internal(op, err)
		}
		if err := b.Put([]byte(k.Name), v); err != nil {
			return fmt.Errorf("put deployment key %s: %w", k.Name, err)
		}
		got = k
		got.Wrapped = clone(k.Wrapped)
		return nil
	})
	if err != nil {
		return eventvault.DeploymentKey{}, err
	}
	return got, nil
}

func decodeDeploymentKey(name string, v []byte) (eventvault.DeploymentKey, error) {
	var r deploymentKeyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return eventvault.DeploymentKey{}, fmt.Errorf("decode deployment key %s: %w", name, err)
	}
	return eventvault.DeploymentKey{Name: name, Version: r.Version, Wrapped: r.Wrapped, CreatedAt: r.CreatedAt}, nil
}

// DeploymentKeys returns every stored deployment key, by name.
func (db *DB) DeploymentKeys(ctx context.Context) ([]eventvault.DeploymentKey, error) {
	const op = "bolt.DeploymentKeys"
	var keys []eventvault.DeploymentKey
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDeploymentKeys).ForEach(func(name, v []byte) error {
			k, err := decodeDeploymentKey(string(name), v)
			if err != nil {
				return err
			}
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// RewrapDeploymentKey swaps old's wrapped bytes for wrapped.
// Errors: ECONFLICT; ENOTFOUND; EINVALID.
func (db *DB) RewrapDeploymentKey(ctx context.Context, old eventvault.DeploymentKey, wrapped []byte) error {
	const op = "bolt.RewrapDeploymentKey"
	if old.Name == "" || old.Version == 0 || len(wrapped) == 0 {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a re-wrap needs a name, a version and a wrapped key"}
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeploymentKeys)
		v := b.Get([]byte(old.Name))
		var cur eventvault.DeploymentKey
		if v != nil {
			var err error
			if cur, err = decodeDeploymentKey(old.Name, v); err != nil {
				return err
			}
		}
		if v == nil || cur.Version != old.Version {
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("no deployment key %s version %d", old.Name, old.Version)}
		}
		if !bytes.Equal(cur.Wrapped, old.Wrapped) {
			return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("deployment key %s version %d changed since it was read", old.Name, old.Version)}
		}
		next, err := json.Marshal(deploymentKeyRecord{Version: cur.Version, Wrapped: wrapped, CreatedAt: cur.CreatedAt})
		if err != nil {
			return internal(op, err)
		}
		return b.Put([]byte(old.Name), next)
	})
}
