package main

// Kernel vocabulary and the few system calls the standard library does not wrap for symlinks
// (l*xattr, utimensat with AT_SYMLINK_NOFOLLOW, syncfs).

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// File types (the S_IFMT bits of st_mode).
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
)

// overlayfs attributes (Documentation/filesystems/overlayfs.rst), below trusted. or user.
// (userxattr).
const (
	xattrOpaque   = ".overlay.opaque"   // directory hides the lower's directory ("y")
	xattrWhiteout = ".overlay.whiteout" // zero-size regular file that is a whiteout
	opaqueYes     = "y"
)

const (
	atFDCWD           = -100
	atSymlinkNoFollow = 0x100
	utimeOmit         = (1 << 30) - 2
)

// stat is the identity of one directory entry (lstat: the entry itself, never a symlink target).
type stat struct {
	dev   uint64
	mode  uint32
	ino   uint64
	nlink uint64
	uid   uint32
	gid   uint32
	rdev  uint64
	size  int64
	atime syscall.Timespec
	mtime syscall.Timespec
	ctime syscall.Timespec
}

func (s *stat) fileType() uint32 { return s.mode & sIFMT }
func (s *stat) isDir() bool      { return s.fileType() == sIFDIR }

// isCharWhiteout: a character device 0/0, the kernel's whiteout.
func (s *stat) isCharWhiteout() bool { return s.fileType() == sIFCHR && s.rdev == 0 }

func lstat(path string) (*stat, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return nil, err
	}
	return &stat{
		mode: st.Mode, ino: st.Ino, nlink: uint64(st.Nlink), uid: st.Uid, gid: st.Gid,
		dev: uint64(st.Dev), rdev: uint64(st.Rdev), size: st.Size, atime: st.Atim, mtime: st.Mtim, ctime: st.Ctim,
	}, nil
}

func bytePtr(s string) *byte {
	p, err := syscall.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return p
}

func llistxattr(path string) ([]string, error) {
	size := 1024
	for {
		buf := make([]byte, size)
		n, _, errno := syscall.Syscall(syscall.SYS_LLISTXATTR, uintptr(unsafe.Pointer(bytePtr(path))),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if errno == syscall.ERANGE {
			size *= 4
			continue
		}
		if errno == syscall.ENOTSUP {
			return nil, nil
		}
		if errno != 0 {
			return nil, errno
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
}

func lgetxattr(path, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, _, errno := syscall.Syscall6(syscall.SYS_LGETXATTR, uintptr(unsafe.Pointer(bytePtr(path))),
			uintptr(unsafe.Pointer(bytePtr(name))), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		if errno == syscall.ERANGE {
			size *= 4
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		return buf[:n], nil
	}
}

func lsetxattr(path, name string, value []byte) error {
	var p unsafe.Pointer
	if len(value) > 0 {
		p = unsafe.Pointer(&value[0])
	} else {
		var zero byte
		p = unsafe.Pointer(&zero)
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_LSETXATTR, uintptr(unsafe.Pointer(bytePtr(path))),
		uintptr(unsafe.Pointer(bytePtr(name))), uintptr(p), uintptr(len(value)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func lremovexattr(path, name string) error {
	_, _, errno := syscall.Syscall(syscall.SYS_LREMOVEXATTR, uintptr(unsafe.Pointer(bytePtr(path))),
		uintptr(unsafe.Pointer(bytePtr(name))), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// xattrs of path itself as name -> value; nil when there are none.
func readXattrs(path string) (map[string]string, error) {
	names, err := llistxattr(path)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		v, err := lgetxattr(path, n)
		if errors.Is(err, syscall.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m[n] = string(v)
	}
	return m, nil
}

// setTimes sets atime and mtime of path itself (utimensat, AT_SYMLINK_NOFOLLOW).
func setTimes(path string, atime, mtime syscall.Timespec) error {
	ts := [2]syscall.Timespec{atime, mtime}
	dirfd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(dirfd),
		uintptr(unsafe.Pointer(bytePtr(path))), uintptr(unsafe.Pointer(&ts[0])), atSymlinkNoFollow, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// setMtime sets only the mtime of path itself.
func setMtime(path string, mtime syscall.Timespec) error {
	return setTimes(path, syscall.Timespec{Nsec: utimeOmit}, mtime)
}

// syncfs flushes the filesystem that holds path (the new generation must be on disk before it
// is renamed into place).
func syncfs(path string) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		syscall.Sync()
		return
	}
	defer syscall.Close(fd)
	if _, _, errno := syscall.Syscall(sysSyncfs, uintptr(fd), 0, 0); errno != 0 {
		syscall.Sync()
	}
}

// linkat makes newName in directory newDir a hard link to oldName in oldDir (never following a
// symlink: a symlink is linked itself).
func linkat(oldDir int, oldName string, newDir int, newName string) error {
	_, _, errno := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(oldDir), uintptr(unsafe.Pointer(bytePtr(oldName))),
		uintptr(newDir), uintptr(unsafe.Pointer(bytePtr(newName))), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// openBeneath opens root/rel (flags as for open(2)) without following a symlink at any component
// of rel: each directory is opened relative to its parent with O_NOFOLLOW. An instance that put a
// symlink where the fold saw a directory (between two levels of the walk) makes it fail, with
// ELOOP or ENOTDIR, instead of leading it out of the upper.
func openBeneath(root, rel string, flags int) (*os.File, error) {
	fd, err := syscall.Open(root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	if rel != "" {
		parts := strings.Split(rel, "/")
		for i, part := range parts {
			fl := syscall.O_RDONLY | syscall.O_DIRECTORY
			if i == len(parts)-1 {
				fl = flags
			}
			next, err := syscall.Openat(fd, part, fl|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
			syscall.Close(fd)
			if err != nil {
				return nil, &os.PathError{Op: "open", Path: root + "/" + strings.Join(parts[:i+1], "/"), Err: err}
			}
			fd = next
		}
	}
	return os.NewFile(uintptr(fd), at(root, rel)), nil
}

// gone: the error of an entry that vanished, or that was replaced so that it is not what the
// walk saw (a symlink where a directory was): skipped like any entry that changed meanwhile.
func gone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR)
}
