module overlay-fleet/foldtool

go 1.25
