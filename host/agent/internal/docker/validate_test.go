package docker

import (
	"regexp"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"name", ValidateName("container name", "ttnode1"), true},
		{"name with dot and dash", ValidateName("network name", "mac.net-1_a"), true},
		{"name starting with -", ValidateName("network name", "-macnet"), false},
		{"name with slash", ValidateName("container name", "a/b"), false},
		{"empty name", ValidateName("container name", ""), false},
		{"hostname", ValidateHostname("box1-ttnode1"), true},
		{"dotted hostname", ValidateHostname("node1.lan"), true},
		{"hostname ending with -", ValidateHostname("node-"), false},
		{"hostname with _", ValidateHostname("node_1"), false},
		{"hostname too long", ValidateHostname("a234567890123456789012345678901234567890123456789012345678901234"), false},
		{"ip", ValidateIPv4("ip", "192.168.1.10"), true},
		{"ip with leading zero", ValidateIPv4("ip", "192.168.1.010"), false},
		{"ipv6", ValidateIPv4("ip", "fd00::1"), false},
		{"mac", ValidateMAC("02:aa:bb:cc:dd:01"), true},
		{"upper-case mac", ValidateMAC("02:AA:BB:CC:DD:01"), false},
		{"multicast mac", ValidateMAC("01:00:5e:00:00:01"), false},
		{"zero mac", ValidateMAC("00:00:00:00:00:00"), false},
		{"dash mac", ValidateMAC("02-aa-bb-cc-dd-01"), false},
		{"image", ValidateImage("ericwang2006/ttnode"), true},
		{"image with registry, port and tag", ValidateImage("registry.lan:5000/a/b:1.2"), true},
		{"image with an option", ValidateImage("--privileged"), false},
		{"image id", ValidateImageID(labImageID), true},
		{"short image id", ValidateImageID("sha256:abc"), false},
		{"box", ValidateBox("box1"), true},
		{"box with upper case", ValidateBox("Box1"), false},
		{"parent", ValidateParent("eth0.100"), true},
		{"parent too long", ValidateParent("a234567890123456"), false},
		{"subnet", ValidateSubnet("192.168.1.0/24", "192.168.1.1"), true},
		{"subnet with host bits", ValidateSubnet("192.168.1.5/24", "192.168.1.1"), false},
		{"gateway outside", ValidateSubnet("192.168.1.0/24", "192.168.2.1"), false},
		{"gateway is the broadcast", ValidateSubnet("192.168.1.0/24", "192.168.1.255"), false},
		{"gateway is the network", ValidateSubnet("192.168.1.0/24", "192.168.1.0"), false},
		{"restart", ValidateRestart("unless-stopped"), true},
		{"restart with count", ValidateRestart("on-failure:3"), false},
		{"env", ValidateEnv("NODE_1", "a=b c"), true},
		{"env key with dash", ValidateEnv("NODE-1", "x"), false},
		{"env with NUL", ValidateEnv("A", "x\x00"), false},
	}
	for _, tt := range tests {
		if (tt.err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.name, tt.err, tt.ok)
		}
	}
}

// TestPatternsCompile: every pattern compiles (they are compiled on first use, not at init).
func TestPatternsCompile(t *testing.T) {
	for _, p := range []func() *regexp.Regexp{namePattern, hostLabelPattern, macPattern, imagePattern, imageIDPattern, boxPattern, ifacePattern, envKeyPattern} {
		if p() == nil || p() != p() {
			t.Error("a pattern is not compiled once")
		}
	}
}
