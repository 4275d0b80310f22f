//go:build linux && amd64

package waiter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// image is the waiter as a static ELF executable: the ELF header, one
// PT_LOAD program header mapping the whole file read+execute at base, and
// code, entered at its first byte.
func image() []byte {
	const (
		base   = 0x400000
		ehsize = 64
		phsize = 56
	)
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */, 0 /* SysV ABI */})
	b.Write(make([]byte, 8))
	binary.Write(&b, le, uint16(2)) // ET_EXEC
	binary.Write(&b, le, uint16(machine))
	binary.Write(&b, le, uint32(1))                  // e_version
	binary.Write(&b, le, uint64(base+ehsize+phsize)) // e_entry
	binary.Write(&b, le, uint64(ehsize))             // e_phoff
	binary.Write(&b, le, uint64(0))                  // e_shoff
	binary.Write(&b, le, uint32(0))                  // e_flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(phsize))
	binary.Write(&b, le, uint16(1)) // e_phnum
	binary.Write(&b, le, uint16(0)) // e_shentsize
	binary.Write(&b, le, uint16(0)) // e_shnum
	binary.Write(&b, le, uint16(0)) // e_shstrndx
	size := uint64(ehsize + phsize + len(code))
	binary.Write(&b, le, uint32(1))    // PT_LOAD
	binary.Write(&b, le, uint32(5))    // PF_R|PF_X
	binary.Write(&b, le, uint64(0))    // p_offset
	binary.Write(&b, le, uint64(base)) // p_vaddr
	binary.Write(&b, le, uint64(base)) // p_paddr
	binary.Write(&b, le, size)         // p_filesz
	binary.Write(&b, le, size)         // p_memsz
	binary.Write(&b, le, uint64(0x1000))
	b.Write(code)
	return b.Bytes()
}

// install makes sure dir/procref-wait is the current waiter: a regular
// file of ours, 0700, with exactly image's bytes; else it writes a new one
// and renames it into place (a proxy of another procref version may be
// executing the old one: rename leaves that one intact).
func install(dir string) (string, error) {
	img := image()
	path := filepath.Join(dir, FileName)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o700 && fi.Size() == int64(len(img)) {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Getuid() {
			if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, img) {
				return path, nil
			}
		}
	}
	f, err := os.CreateTemp(dir, FileName+".*")
	if err != nil {
		return "", fmt.Errorf("writing the waiter: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(img)
	if err := f.Chmod(0o700); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing the waiter: %w", werr)
	}
	return path, nil
}

func execWaiter(dir string, conn syscall.Conn, name, message string) error {
	path, err := install(dir)
	if err != nil {
		return err
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("waiter: %w", err)
	}
	var xerr error
	cerr := rc.Control(func(fd uintptr) {
		// The waiter inherits this descriptor (not close-on-exec) and
		// reads it blocking; both flags are restored if exec fails.
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			xerr = err
			return
		}
		if _, err := unix.FcntlInt(fd, unix.F_SETFD, 0); err != nil {
			xerr = err
			return
		}
		if _, err := unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_NONBLOCK); err != nil {
			unix.FcntlInt(fd, unix.F_SETFD, unix.FD_CLOEXEC)
			xerr = err
			return
		}
		env := append([]string{messageEnv + "=" + message}, os.Environ()...)
		xerr = syscall.Exec(path, []string{FileName, strconv.Itoa(int(fd)), name}, env)
		// Still here: exec failed.
		unix.FcntlInt(fd, unix.F_SETFL, fl)
		unix.FcntlInt(fd, unix.F_SETFD, unix.FD_CLOEXEC)
	})
	if cerr != nil {
		return fmt.Errorf("waiter: %w", cerr)
	}
	return fmt.Errorf("waiter: exec %s: %w", path, xerr)
}
