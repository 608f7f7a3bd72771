package ovlmount

import "syscall"

type syscallStat struct{ dev uint64 }

func statOf(path string, st *syscallStat) error {
	var s syscall.Stat_t
	if err := syscall.Stat(path, &s); err != nil {
		return err
	}
	st.dev = uint64(s.Dev)
	return nil
}

// devMajor and devMinor undo mkdev.
func devMajor(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&0xfffff000) }
func devMinor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&0xffffff00) }
