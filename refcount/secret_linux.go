//go:build linux && !mips && !mipsle

package refcount

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/procref/procref/platform"
)

// secretFile is the per-user key secret in the private runtime dir.
const (
	secretFile = "secret"
	secretLen  = 32
)

// loadSecret returns the key secret kept in <dir>/secret, creating it (0600,
// random) on first use, relative to d's handle. Racing creators each link a
// complete temp file into place; exactly one link wins and everybody reads
// the winner's bytes, so no reader ever sees a partial secret.
func loadSecret(d *platform.PrivateDir) ([]byte, error) {
	if s, err := readSecret(d); !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	f, tmp, err := d.CreateTemp(".secret-")
	if err != nil {
		return nil, fmt.Errorf("create key secret: %w", err)
	}
	defer d.Remove(tmp)
	buf := make([]byte, secretLen)
	if _, err := rand.Read(buf); err != nil {
		f.Close()
		return nil, fmt.Errorf("create key secret: %w", err)
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create key secret: %w", err)
	}
	if err := d.Link(tmp, secretFile); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create key secret: %w", err)
	}
	return readSecret(d)
}

// readSecret reads the secret, refusing a file that is not ours, not 0600,
// a symlink or of the wrong length.
func readSecret(d *platform.PrivateDir) ([]byte, error) {
	f, err := openPrivate(d, secretFile, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	path := filepath.Join(d.Path(), secretFile)
	buf := make([]byte, secretLen+1)
	n, err := io.ReadFull(f, buf)
	if n != secretLen || !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("key secret %s has %d bytes, want %d: %w; remove %s (running services keep working; new windows then start new ones)",
			path, n, secretLen, ErrNotPrivate, path)
	}
	return buf[:secretLen], nil
}

// sysvKey derives the IPC key as HMAC(secret, uid, service key): another
// user cannot predict or squat it (the secret is private), two runtime dirs
// (two secrets) never share a count, and two users never share a set by
// accident. key_t 0 is IPC_PRIVATE and is avoided.
func sysvKey(secret []byte, uid int, key string) int32 {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, "procref/refcount/sysv\x00"+strconv.Itoa(uid)+"\x00"+key)
	k := int32(binary.BigEndian.Uint32(m.Sum(nil)[:4]))
	if k == 0 {
		k = 1
	}
	return k
}
