module overlay-fleet/test/host/mmapwrite

go 1.25
