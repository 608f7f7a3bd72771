package main

// Copies of one entry of an instance's view into the new generation: one handler per file type.
// Owner, mode, atime/mtime and extended attributes are preserved; regular files keep their holes.

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

// copyEntry makes dst a copy of src (an entry of a view; st is its lstat). dst must not exist.
func copyEntry(src, dst string, st *stat) error {
	var err error
	switch st.fileType() {
	case sIFREG:
		err = copyRegular(src, dst, st)
	case sIFLNK:
		err = copySymlink(src, dst)
	case sIFCHR, sIFBLK, sIFIFO, sIFSOCK:
		err = syscall.Mknod(dst, st.mode, int(st.rdev))
	default:
		return fmt.Errorf("'%s' has an unknown file type %o", src, st.fileType())
	}
	if err != nil {
		return err
	}
	return copyMeta(src, dst, st)
}

// copyRegular copies the data of a regular file, only the parts that hold data (sparse files stay
// sparse).
func copyRegular(src, dst string, st *stat) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := copyData(in, out, st.size); err != nil {
		return fmt.Errorf("copy '%s' to '%s': %w", src, dst, err)
	}
	return out.Close()
}

func copyData(in, out *os.File, size int64) error {
	var off int64
	for off < size {
		data, err := in.Seek(off, seekData)
		if err != nil { // ENXIO: only a hole up to the end; EINVAL: no SEEK_DATA here
			if err2, ok := err.(*os.PathError); ok && err2.Err == syscall.ENXIO {
				break
			}
			data = off
		}
		hole, err := in.Seek(data, seekHole)
		if err != nil {
			hole = size
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, hole-data); err != nil && err != io.EOF {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

func copySymlink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// copyMeta gives dst the owner, mode, extended attributes and times of src (st).
func copyMeta(src, dst string, st *stat) error {
	if err := os.Lchown(dst, int(st.uid), int(st.gid)); err != nil {
		return err
	}
	if st.fileType() != sIFLNK {
		if err := syscall.Chmod(dst, st.mode&0o7777); err != nil {
			return err
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	return setTimes(dst, st.atime, st.mtime)
}

// copyXattrs sets on dst exactly the extended attributes of src (a view: overlayfs hides its own).
func copyXattrs(src, dst string) error {
	want, err := readXattrs(src)
	if err != nil {
		return fmt.Errorf("read attributes of '%s': %w", src, err)
	}
	have, err := readXattrs(dst)
	if err != nil {
		return fmt.Errorf("read attributes of '%s': %w", dst, err)
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			if err := lremovexattr(dst, name); err != nil {
				return fmt.Errorf("remove attribute %s of '%s': %w", name, dst, err)
			}
		}
	}
	for name, value := range want {
		if old, ok := have[name]; ok && old == value {
			continue
		}
		if err := lsetxattr(dst, name, []byte(value)); err != nil {
			return fmt.Errorf("set attribute %s of '%s': %w", name, dst, err)
		}
	}
	return nil
}

// linkFarm builds dst as a hard-link farm of the directory src: new directories with src's
// owner, mode, attributes and times; every other entry a hard link (extra disk: one directory
// entry per file, the directories' blocks).
func linkFarm(src, dst string) error {
	st, err := lstat(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	d, err := os.Open(src)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(4096)
		for _, n := range names {
			s, t := src+"/"+n, dst+"/"+n
			est, err := lstat(s)
			if err != nil {
				return err
			}
			if est.isDir() {
				err = linkFarm(s, t)
			} else {
				err = os.Link(s, t)
			}
			if err != nil {
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	return copyMeta(src, dst, st)
}
