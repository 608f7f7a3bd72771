package main

// Copies of one entry of an instance's view into the new generation: one handler per file type.
// Owner, mode, atime/mtime and extended attributes are preserved; regular files keep their holes.

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
)

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

// copyEntry makes dst a copy of src, an entry of a view (st: its lstat); dst must not exist. The
// data of a regular file is read from the same file in the upper layer, upper/rel (a non-directory
// of the upper is what the view shows; read directly, copy_file_range can copy it in the kernel,
// or share its blocks: reflink on btrfs and xfs), opened without following a symlink on the way.
func copyEntry(src, upper, rel, dst string, st *stat) error {
	var err error
	switch st.fileType() {
	case sIFREG:
		err = copyRegular(upper, rel, dst, st)
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
func copyRegular(root, rel, dst string, st *stat) error {
	// O_NONBLOCK: what is there now may be a FIFO put in the file's place, which must not hang
	// the fold; it must still be the regular file the walk saw, else it is gone for the fold.
	in, err := openBeneath(root, rel, syscall.O_RDONLY|syscall.O_NONBLOCK)
	if err != nil {
		return err
	}
	src := in.Name()
	var now syscall.Stat_t
	if err := syscall.Fstat(int(in.Fd()), &now); err != nil || now.Mode&sIFMT != sIFREG || now.Ino != st.ino {
		in.Close()
		return &os.PathError{Op: "open", Path: src, Err: syscall.ENOENT}
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
	if err := copyXattrs(src, dst, true); err != nil {
		return err
	}
	return setTimes(dst, st.atime, st.mtime)
}

// copyXattrs sets on dst exactly the extended attributes of src (a view: overlayfs hides its own).
// fresh: dst was just created (it has none to remove).
func copyXattrs(src, dst string, fresh bool) error {
	want, err := readXattrs(src)
	if err != nil {
		return fmt.Errorf("read attributes of '%s': %w", src, err)
	}
	var have map[string]string
	if !fresh {
		if have, err = readXattrs(dst); err != nil {
			return fmt.Errorf("read attributes of '%s': %w", dst, err)
		}
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
// entry per file, the directories' blocks). Directories are farmed by up to four goroutines per
// CPU (the work is mostly waiting on the filesystem's journal).
func linkFarm(src, dst string) error {
	fm := &farm{slots: make(chan struct{}, 4*runtime.NumCPU())}
	fm.dir(src, dst)
	return fm.err
}

type farm struct {
	slots chan struct{} // a free slot: a subdirectory may be farmed in a goroutine of its own
	mu    sync.Mutex
	err   error
}

func (fm *farm) fail(err error) {
	fm.mu.Lock()
	if fm.err == nil {
		fm.err = err
	}
	fm.mu.Unlock()
}

func (fm *farm) failed() bool {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.err != nil
}

// dir farms src into dst; its subdirectories in other goroutines when slots are free.
func (fm *farm) dir(src, dst string) {
	if err := fm.entries(src, dst); err != nil {
		fm.fail(err)
	}
}

func (fm *farm) entries(src, dst string) error {
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
	t, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer t.Close()
	var sub sync.WaitGroup
	for !fm.failed() {
		ents, rerr := d.ReadDir(4096) // d_type: no lstat per entry
		for _, e := range ents {
			if !e.IsDir() {
				// relative to the two open directories: no path walk per file
				if err := linkat(int(d.Fd()), e.Name(), int(t.Fd()), e.Name()); err != nil {
					return &os.LinkError{Op: "link", Old: src + "/" + e.Name(), New: dst + "/" + e.Name(), Err: err}
				}
				continue
			}
			subSrc, subDst := src+"/"+e.Name(), dst+"/"+e.Name()
			select {
			case fm.slots <- struct{}{}:
				sub.Add(1)
				go func() {
					defer func() { <-fm.slots; sub.Done() }()
					fm.dir(subSrc, subDst)
				}()
			default:
				fm.dir(subSrc, subDst)
			}
		}
		if rerr == io.EOF || len(ents) == 0 {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	sub.Wait() // the directory's times are set once everything below it is there
	return copyMeta(src, dst, st)
}
