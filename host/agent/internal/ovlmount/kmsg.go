package ovlmount

import (
	"errors"
	"io"
	"strings"
	"syscall"
)

// kmsgPath is the kernel log, one record per read(2) (Documentation/ABI/testing/dev-kmsg).
const kmsgPath = "/dev/kmsg"

// kmsgMark is a reader of /dev/kmsg placed at its end; a mark that could not be made has fd -1
// and tells nothing.
type kmsgMark struct{ fd int }

// markKmsg opens the kernel log at its end. Raw, non-blocking reads: the runtime's poller would
// wait for the next record instead of reporting the end.
func markKmsg(path string) KernelMark {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return kmsgMark{fd: -1}
	}
	if _, err := syscall.Seek(fd, 0, io.SeekEnd); err != nil {
		syscall.Close(fd)
		return kmsgMark{fd: -1}
	}
	return kmsgMark{fd: fd}
}

// Since reads the records logged since the mark and keeps the overlay ones.
func (k kmsgMark) Since() string {
	if k.fd < 0 {
		return ""
	}
	var records []string
	buf := make([]byte, 8192)
	for i := 0; i < 10000; i++ { // bounded: a log flooded while it is read
		n, err := syscall.Read(k.fd, buf)
		if errors.Is(err, syscall.EPIPE) {
			continue // records were overwritten before being read: go on with the next
		}
		if err != nil || n <= 0 {
			break // EAGAIN: the end
		}
		records = append(records, string(buf[:n]))
	}
	return overlayMessages(records)
}

// Close closes the log.
func (k kmsgMark) Close() {
	if k.fd >= 0 {
		syscall.Close(k.fd)
	}
}

// overlayMessages is what records of /dev/kmsg (`<prio>,<seq>,<usec>,<flags>;<text>` and
// continuation lines) say about overlays: the texts that name overlay, each once, the last five,
// joined by " | ".
func overlayMessages(records []string) string {
	var msgs []string
	seen := map[string]bool{}
	for _, r := range records {
		_, text, ok := strings.Cut(r, ";")
		if !ok {
			continue
		}
		text, _, _ = strings.Cut(text, "\n")
		text = strings.TrimSpace(text)
		if !strings.Contains(text, "overlay") || seen[text] {
			continue
		}
		seen[text] = true
		msgs = append(msgs, text)
	}
	if len(msgs) > 5 {
		msgs = msgs[len(msgs)-5:]
	}
	return strings.Join(msgs, " | ")
}
